"""Job error messages are shown to API callers: they name the user's file, never the server's
folders. Reader messages quote the path they opened, so every message a job stores passes
through `without_paths` first.
"""

from __future__ import annotations

import re
from pathlib import Path

# An absolute POSIX path of two or more segments not glued to a word, a URL scheme or a
# relative path ("volume_fl/hemoglobin_pg", "mg/dL" and "1/2" stay as they are).
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/-])/(?:[^\s/'\"(),;:]+/)+[^\s/'\"(),;:]*")


def without_paths(message: str, upload_path: str | Path | None = None,
                  filename: str | None = None) -> str:
    """`message` with the upload's path replaced by the user's file name and any other
    absolute path by `<path>`.
    """
    if upload_path is not None:
        path = Path(upload_path)
        name = filename or path.name
        for known, shown in ((str(path), name), (str(path.parent), "<upload>")):
            message = message.replace(known, shown)
    return _ABSOLUTE_PATH.sub("<path>", message)
