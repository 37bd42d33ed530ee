"""A small local Ray runtime for tests: two CPUs, a bounded object store, shut down after."""

from collections.abc import Iterator

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'hct[ray]')")

OBJECT_STORE_BYTES = 256 * 1024**2


@pytest.fixture(scope="module")
def ray_session() -> Iterator[None]:
    """A local Ray runtime shared by one test module."""
    ray.init(num_cpus=2, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
             log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()
