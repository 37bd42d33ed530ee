"""Is there an NVIDIA GPU on this host? Asked before onnxruntime is asked for CUDA.

onnxruntime-gpu lists the CUDA provider as available on every host (it is compiled in), and
asking for it where no GPU or CUDA libraries exist makes onnxruntime log a red error while
loading. The kernel driver's traces answer without loading anything: device nodes
`/dev/nvidia0`, `/dev/nvidia1`, ... (also what a container sees when a GPU is passed in) or
entries under `/proc/driver/nvidia/gpus/`. `nvidia-smi` on the PATH is not used: it can be
installed where no GPU is.
"""

from __future__ import annotations

from pathlib import Path


def nvidia_gpu_evidence(root: Path = Path("/")) -> str | None:
    """What shows an NVIDIA GPU is present (a path), or None when nothing does."""
    devices = sorted(p for p in (root / "dev").glob("nvidia[0-9]*") if p.name[6:].isdigit())
    if devices:
        return str(devices[0])
    gpus = root / "proc/driver/nvidia/gpus"
    if gpus.is_dir() and any(gpus.iterdir()):
        return str(gpus)
    return None
