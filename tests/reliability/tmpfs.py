"""A tiny tmpfs mounted for one test or bench case: a disk that really fills up (ENOSPC)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class MountRefused(RuntimeError):
    """This host does not let us mount a tmpfs (not root, or no CAP_SYS_ADMIN)."""


@contextmanager
def tiny_tmpfs(path: Path, size: str) -> Iterator[Path]:
    """Mount a `size` tmpfs ("256k") at `path` for the block; unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                           str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        raise MountRefused(f"mount -t tmpfs refused: {done.stderr.strip() or done.returncode}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(path: Path, leave_bytes: int = 0) -> Path:
    """Fill the file system of `path` with one file until at most `leave_bytes` are free."""
    filler = path / "filler"
    block = b"\0" * 4096
    with filler.open("wb", buffering=0) as out:  # unbuffered: nothing left to flush on close
        try:
            while out.write(block):
                pass
        except OSError:
            pass
    if leave_bytes:
        size = filler.stat().st_size
        with filler.open("r+b") as out:
            out.truncate(max(0, size - leave_bytes))
    return filler
