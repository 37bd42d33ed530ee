from service.jobs.redact import without_paths


def test_upload_path_becomes_the_file_name_and_other_paths_are_hidden():
    upload = "/srv/hct/uploads/3f2a/export.csv"
    message = (f"{upload}: cannot be opened; also tried /srv/hct/uploads/3f2a and "
               "'/etc/hct/secret.key' (see /var/log)")
    assert without_paths(message, upload, "export.csv") == (
        "export.csv: cannot be opened; also tried <upload> and '<path>' (see <path>)")


def test_text_that_only_looks_like_a_path_is_kept():
    message = ("volume_fl/hemoglobin_pg must be in fL/pg; 1/2 of rows; mg/dL; "
               "see https://example.org/a/b; ./relative/file.csv")
    assert without_paths(message) == message
