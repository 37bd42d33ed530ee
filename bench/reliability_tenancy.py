"""Reliability rows for monitoring per tenant, against a real uvicorn server with three tenants'
keys (SQLite): tenant A posting samples leaves tenant B's `/v1/monitoring` unchanged; figures over
fewer than HCT_MONITORING_MIN_SAMPLES samples are null with the reason (and NaN on /metrics);
an admin sees all traffic and each tenant's; a tenant probing another tenant's prediction id
gets the plain 404 of an absent id, in about the same time, and leaves an audit row; a tenant
asking for another tenant's monitoring is a 403, audited.

    PYTHONPATH=$PWD python -m bench.reliability_tenancy
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, select

from service.db.tables import audit_log
from tests.reliability.faults import prediction_body
from tests.reliability.server import uvicorn_server

KEYS = {"key-a": "lab-a:predict+read", "key-b": "lab-b:predict+read",
        "key-c": "lab-c:predict+read", "ops": "ops:admin"}
MIN_SAMPLES = 20
PROBES = 20


def _as(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _post(http: httpx.Client, key: str, n: int, measured: float, seed: int) -> list[str]:
    samples = [prediction_body(seed + i) | {"patient_id": f"P-{seed + i}",
                                            "measured_hematocrit_pct": measured}
               for i in range(n)]
    r = http.post("/v1/predictions/bulk", json={"samples": samples}, headers=_as(key))
    r.raise_for_status()
    return [item["id"] for item in r.json()["items"]]


def _view(http: httpx.Client, key: str, **params: str) -> dict[str, Any]:
    r = http.get("/v1/monitoring", headers=_as(key), params=params)
    r.raise_for_status()
    return r.json()


def _gauge(text: str, sample: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def _ms(http: httpx.Client, path: str, key: str) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    r = http.get(path, headers=_as(key))
    return r, (time.perf_counter() - start) * 1000


def tenancy_rows(folder: Path, samples: int = 40) -> list[dict[str, Any]]:
    """One row per case: what was seen and whether it is what the tenancy rules require."""
    database = f"sqlite:///{folder / 'hct.db'}"
    entries = [f"{scopes.split(':')[0]}:{scopes.split(':')[1]}:"
               f"{hashlib.sha256(k.encode()).hexdigest()}" for k, scopes in KEYS.items()]
    env = {"HCT_DATABASE_URL": database, "HCT_UPLOAD_DIR": str(folder / "uploads"),
           "HCT_API_KEYS": ",".join(entries), "HCT_MONITORING_MIN_SAMPLES": str(MIN_SAMPLES)}
    rows: list[dict[str, Any]] = []
    with uvicorn_server(env, folder / "server.log") as server, \
            httpx.Client(base_url=server.url, timeout=120) as http:
        version = _view(http, "ops")["models"][0]["model_version"]

        _post(http, "key-c", 5, 40.0, seed=10_000)
        (c,) = _view(http, "key-c")["models"]
        hidden = c["agreement"]["hidden"] or {}
        bias_gauge = _gauge(http.get("/metrics").text,
                            f'hct_agreement_bias{{model_version="{version}"}}')
        rows.append({"case": f"5 samples < minimum window {MIN_SAMPLES}: figures hidden",
                     "result": f"bias {c['agreement']['bias_pct']}, shares "
                               f"{sorted(set(c['quality']['share'].values()), key=str)}, "
                               f"reason {hidden.get('reason')!r}; /metrics bias {bias_gauge}",
                     "ok": c["agreement"]["bias_pct"] is None
                     and set(c["quality"]["share"].values()) == {None}
                     and hidden.get("min_samples") == MIN_SAMPLES
                     and bias_gauge is not None and math.isnan(bias_gauge)})

        _post(http, "key-b", 25, 40.0, seed=20_000)
        before = _view(http, "key-b")
        a_ids = _post(http, "key-a", samples, 60.0, seed=30_000)
        after = _view(http, "key-b")
        (a,) = _view(http, "key-a")["models"]
        rows.append({"case": f"tenant A posts {samples} samples: tenant B's view unchanged",
                     "result": f"B bias {before['models'][0]['agreement']['bias_pct']:.2f} -> "
                               f"{after['models'][0]['agreement']['bias_pct']:.2f}, B samples "
                               f"{after['models'][0]['samples_seen']}; A bias "
                               f"{a['agreement']['bias_pct']:.2f}",
                     "ok": before == after and after["models"][0]["samples_seen"] == 25})

        admin = _view(http, "ops")
        per_tenant = {t: v["models"][0]["samples_seen"] for t, v in admin["tenants"].items()}
        rows.append({"case": "admin: all traffic and each tenant's",
                     "result": f"all {admin['models'][0]['samples_seen']}, per tenant "
                               f"{per_tenant}",
                     "ok": admin["models"][0]["samples_seen"] == 30 + samples
                     and per_tenant == {"lab-a": samples, "lab-b": 25, "lab-c": 5}
                     and admin["tenants"]["lab-b"]["models"] == after["models"]})

        foreign = http.get("/v1/monitoring", params={"tenant": "lab-a"}, headers=_as("key-b"))
        rows.append({"case": "tenant B asks for tenant A's monitoring",
                     "result": f"{foreign.status_code} {foreign.json()['error']['code']}",
                     "ok": foreign.status_code == 403})

        owned, absent = a_ids[0], str(uuid.uuid4())
        probe_ms, miss_ms, same = [], [], True
        for _ in range(PROBES):  # interleaved, so machine load hits both alike
            probe, t_probe = _ms(http, f"/v1/predictions/{owned}", "key-b")
            miss, t_miss = _ms(http, f"/v1/predictions/{absent}", "key-b")
            probe_ms.append(t_probe)
            miss_ms.append(t_miss)
            same &= (probe.status_code == miss.status_code == 404
                     and probe.content == miss.content.replace(absent.encode(), owned.encode())
                     and probe.headers.get("content-length") == miss.headers.get(
                         "content-length"))
        ratio = statistics.median(probe_ms) / statistics.median(miss_ms)
        rows.append({"case": "tenant B probes tenant A's prediction id: plain 404",
                     "result": f"byte-identical to an absent id's: {same}; median "
                               f"{statistics.median(probe_ms):.1f} ms vs "
                               f"{statistics.median(miss_ms):.1f} ms (ratio {ratio:.2f})",
                     "ok": same and 0.5 < ratio < 2.0,
                     "probe_ms": round(statistics.median(probe_ms), 2),
                     "miss_ms": round(statistics.median(miss_ms), 2)})

    engine = create_engine(database)
    with engine.connect() as conn:
        trail = [r._asdict() for r in conn.execute(select(audit_log)).all()]
    engine.dispose()
    fp_b = "key:" + hashlib.sha256(b"key-b").hexdigest()[:12]
    probes = [r for r in trail if r["action"] == "not_found" and r["resource_id"] == owned]
    details = [json.loads(r["detail"]) for r in probes]
    rows.append({"case": "the probe is audited (fingerprint, client, whose id)",
                 "result": f"{len(probes)}/{PROBES} rows, principal "
                           f"{sorted({r['principal'] for r in probes})}, owner "
                           f"{sorted({d['owner_tenant'] for d in details})}",
                 "ok": len(probes) == PROBES and {r["principal"] for r in probes} == {fp_b}
                 and all(d["other_tenant"] and d["client"] == "127.0.0.1" for d in details)
                 and not [r for r in trail if "key-b" in json.dumps(r, default=str)]})
    denied = [r for r in trail if r["action"] == "denied"
              and r["resource_id"] == "GET /v1/monitoring"]
    rows.append({"case": "the cross-tenant monitoring query is audited",
                 "result": f"{len(denied)} row(s), principal "
                           f"{sorted({r['principal'] for r in denied})}",
                 "ok": len(denied) == 1 and denied[0]["principal"] == fp_b})
    return rows


def markdown(rows: list[dict[str, Any]]) -> list[str]:
    """The rows as a markdown table."""
    return ["| monitoring tenancy | result | as expected |", "|---|---|---|",
            *[f"| {r['case']} | {r['result']} | {r['ok']} |" for r in rows]]


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        print("\n".join(markdown(tenancy_rows(Path(tmp)))))
