"""The dependency rules of ARCHITECTURE.md, checked on the source: arrows point one way."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _imports(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("ingestion", {"model", "service", "torch", "fastapi", "sqlalchemy", "onnxruntime"}),
     ("model", {"service", "fastapi", "sqlalchemy"})],
)
def test_packages_do_not_import_downstream(package, forbidden):
    bad = {f: sorted(n & forbidden) for f, n in _imports(package).items() if n & forbidden}
    assert not bad, bad


def test_service_never_imports_torch_outside_the_cli():
    # The CLI may import training lazily, inside a command; no other service module may.
    bad = [f for f, n in _imports("service").items() if "torch" in n and not f.endswith("cli.py")]
    assert not bad, bad
