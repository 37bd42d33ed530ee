"""Batch results: `?format=` and `Accept` both choose CSV or JSON (the query wins, an Accept
naming neither is a 406); a failed job's results answer with its reason; an upload missing a
required column is refused at once, like an empty file."""

import time

from tests.service.api.test_batches_api import export_csv


def _done_job(client) -> str:
    r = client.post("/v1/batches", files={"file": ("export.csv", export_csv(2), "text/csv")})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while client.get(f"/v1/batches/{job_id}").json()["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return job_id


def test_results_follow_the_accept_header_and_the_format_query_wins(client):
    job_id = _done_job(client)
    url = f"/v1/batches/{job_id}/results"
    as_json = client.get(url, headers={"Accept": "application/json"})
    assert as_json.status_code == 200
    assert as_json.headers["content-type"].startswith("application/json")
    assert [row["status"] for row in as_json.json()] == ["done", "done"]
    assert client.get(url).headers["content-type"].startswith("text/csv")
    assert client.get(url, headers={"Accept": "*/*"}).headers["content-type"].startswith(
        "text/csv")
    prefers_csv = client.get(url, headers={"Accept": "application/json;q=0.5, text/csv"})
    assert prefers_csv.headers["content-type"].startswith("text/csv")
    query_wins = client.get(url + "?format=csv", headers={"Accept": "application/json"})
    assert query_wins.headers["content-type"].startswith("text/csv")
    assert client.get(url + "?format=json").json()[0]["status"] == "done"


def test_an_accept_naming_neither_csv_nor_json_is_406(client):
    job_id = _done_job(client)
    r = client.get(f"/v1/batches/{job_id}/results", headers={"Accept": "application/xml"})
    assert r.status_code == 406
    assert r.json()["error"]["field"] == "header.accept"
    ok = client.get(f"/v1/batches/{job_id}/results?format=json",
                    headers={"Accept": "application/xml"})
    assert ok.status_code == 200


def test_an_upload_missing_a_required_column_is_refused_at_once(client):
    data = b"patient_id,sample_id,volume_fl\nP1,S1,90\n"
    r = client.post("/v1/batches", files={"file": ("export.csv", data, "text/csv")})
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "body.file" and "hemoglobin" in error["message"]
    assert "uploads" not in error["message"]  # the server's folders stay out of messages


def test_results_of_a_failed_job_answer_409_with_its_reason(client):
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # a zip with no FCS file: the job fails whole
        archive.writestr("notes.txt", "no samples here")
    r = client.post("/v1/batches", files={"file": ("export.zip", buffer.getvalue(),
                                                   "application/zip")})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while (status := client.get(f"/v1/batches/{job_id}").json())["status"] != "failed":
        assert time.monotonic() < deadline, status
        time.sleep(0.1)
    r = client.get(f"/v1/batches/{job_id}/results")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "job_failed"
    assert "no .fcs files" in r.json()["error"]["message"]
