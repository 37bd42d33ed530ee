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


PACKAGES = ("ingestion", "model", "service", "bench")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _module_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports (at any depth in the file, lazily or not)."""
    modules = {_module_name(p): p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")
               if "migrations" not in p.parts}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                candidates = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for candidate in candidates:
                # `from service.db import tables` names a module; `from x import f` a function
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    return graph


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path of modules, or None (iterative DFS, three colours)."""
    colour = dict.fromkeys(graph, 0)  # 0 unvisited, 1 on the stack, 2 done
    for start in sorted(graph):
        if colour[start]:
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        colour[start] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                colour[node] = 2
                stack.pop()
                path.pop()
            elif colour.get(child) == 1:
                return [*path[path.index(child):], child]
            elif colour.get(child) == 0:
                colour[child] = 1
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
    return None


def test_no_import_cycle_anywhere_in_the_packages():
    assert _find_cycle(_module_graph()) is None, " -> ".join(_find_cycle(_module_graph()))


def test_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


@pytest.mark.parametrize(
    ("room", "forbidden"),
    [("service.prediction", {"service.api", "service.db", "service.jobs", "service.online"}),
     ("service.runtime", {"service.api", "service.db", "service.jobs", "service.prediction",
                          "service.online", "ingestion"}),
     ("service.db", {"service.api", "service.jobs", "service.online", "fastapi"}),
     ("service.jobs", {"service.api", "service.online", "fastapi"})],
)
def test_service_rooms_point_one_way(room, forbidden):
    """prediction and runtime know no storage or HTTP; db and jobs know no HTTP."""
    bad = {}
    for name, targets in _module_graph().items():
        if not (name == room or name.startswith(room + ".")):
            continue
        hits = {t for t in targets for f in forbidden if t == f or t.startswith(f + ".")}
        path = ROOT / (name.replace(".", "/") + ".py")
        if not path.is_file():
            path = ROOT / name.replace(".", "/") / "__init__.py"
        hits |= _imports_of(path) & {f for f in forbidden if "." not in f}
        if hits:
            bad[name] = sorted(hits)
    assert not bad, bad


def _imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names
