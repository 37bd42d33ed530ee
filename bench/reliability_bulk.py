"""The bulk attack corpus and seeded fuzzed bulk bodies against a real uvicorn process.

Invariants checked for every body: the server process stays alive and `/healthz` answers
(after each body of the corpus, after each batch of fuzzed bodies); every answer is 2xx, 4xx
or 503, never another 5xx, a dropped connection or a timeout; and no response carries bytes
from outside its request. That last check: every echoed id (`patient_id`, `sample_id`) must
be a substring of the request (the raw bytes, or a string the request's JSON decodes to);
every quoted value in a message (`'…'`, Python repr as the service writes it) must be too,
or be a literal of the service's own source; and every control or non-ASCII character in any
response string must occur in the request. A server that reads past a buffer answers heap
bytes, another request's ids or garbage, which none of these explain.

    PYTHONPATH=$PWD python -m bench.reliability --only bulk [--bulk-fuzz 10000]
"""

from __future__ import annotations

import ast
import json
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx

from bench.arrow_ipc import decoded_buffers
from bench.bulk_corpus import JSON, BulkCase, bulk_corpus
from bench.bulk_fuzz import fuzzed
from service.api.arrow_codec import ARROW_STREAM
from tests.reliability.server import REPO, Server, uvicorn_server

ROUTE = "/v1/predictions/bulk"
_QUOTED = re.compile(r"'(?:[^'\\\n]|\\.)*'|\"(?:[^\"\\\n]|\\.)*\"")
_ID_KEYS = {"patient_id", "sample_id"}
_MESSAGE_KEYS = {"message", "error_message", "detail", "msg"}


@dataclass
class Outcome:
    name: str
    content_type: str
    size: int
    status: int | str  # HTTP status, or "dropped" / "timeout"
    seconds: float
    foreign: list[str] = field(default_factory=list)
    died: bool = False

    @property
    def clean_status(self) -> bool:
        return isinstance(self.status, int) and (200 <= self.status < 300
                                                 or 400 <= self.status < 500
                                                 or self.status == 503)


# ---------------------------------------------------------------- foreign-byte check


@cache
def source_literals() -> frozenset[str]:
    """String constants of the service's own code: text a message may quote legitimately."""
    out: set[str] = set()
    for package in ("service", "ingestion", "model"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    out.add(node.value)
    return frozenset(out)


_SERVED: set[str] = set()


def learn_served_text(openapi: Any) -> None:
    """Add the server's own OpenAPI text (field patterns, enum values) to what a message may
    quote: validation messages cite a field's pattern, which no request holds."""
    _SERVED.update(value for _, value in _walk(openapi))
    _vocabulary.cache_clear()


@cache
def _vocabulary() -> tuple[frozenset[str], tuple[str, ...]]:
    """(every literal, those holding control or non-ASCII characters, longest first)."""
    words = source_literals() | _SERVED
    odd = tuple(sorted((w for w in words if len(w) >= 4 and _odd(w)), key=len, reverse=True))
    return words, odd


def _odd(text: str) -> set[str]:
    return {c for c in text if not (c.isascii() and c.isprintable())}


def _literal_in_source(value: str) -> bool:
    """A whole quoted value found in one literal; short ones only when plain printable text,
    so a leaked NUL or two is never excused by a pattern that happens to contain it."""
    if not (len(value) >= 4 or (value.isascii() and value.isprintable())):
        return False
    return any(value in w for w in _vocabulary()[0])


class Request:
    """What a response may legitimately echo: the request's bytes and its decoded strings."""

    def __init__(self, content_type: str, body: bytes) -> None:
        self.body = body
        self.strings = [body.decode("utf-8", "replace"), body.decode("latin-1")]
        self.blobs = [body]
        if content_type == JSON:
            try:
                self.strings += list(_json_strings(json.loads(body)))
            except (ValueError, RecursionError):
                pass
        else:  # a compressed batch's strings are in its decoded buffers, not in the body
            self.blobs += decoded_buffers(body)

    def explains(self, text: str) -> bool:
        """`text` (or its truncation marker stripped) is a slice of the request."""
        for marker in ("…", "..."):
            text = text.removesuffix(marker)
        for piece in text.split("\ufffd"):
            if not piece:
                continue
            raw = piece.encode("utf-8", "surrogatepass")
            if any(raw in blob for blob in self.blobs):
                continue
            if not any(piece in s for s in self.strings):
                return False
        return True


def _json_strings(tree: Any) -> Iterator[str]:
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            yield from node.keys()
            stack += node.values()
        elif isinstance(node, list):
            stack += node


def _unquote(quoted: str) -> str:
    try:
        value = ast.literal_eval(quoted)
    except (ValueError, SyntaxError):
        return quoted[1:-1]
    return value if isinstance(value, str) else quoted[1:-1]


def foreign_strings(request: Request, key: str | None, value: str) -> list[str]:
    """The parts of one response string its request cannot explain (empty: all explained)."""
    out = []
    if key in _ID_KEYS and not request.explains(value):
        out.append(f"{key}={value!r}")
    if key in _MESSAGE_KEYS:
        for quoted in _QUOTED.findall(value):
            inner = _unquote(quoted)
            if inner and not request.explains(inner) and not _literal_in_source(inner) \
                    and not _literal_in_source(quoted[1:-1]):
                out.append(f"{key} quotes {quoted[:200]}")
    rest = value
    if _odd(rest):
        for literal in _vocabulary()[1]:
            rest = rest.replace(literal, "")
    unexplained = [c for c in _odd(rest) if not request.explains(c)]
    if unexplained:
        out.append(f"{key}: characters {''.join(sorted(unexplained))[:40]!r} in {value[:200]!r}")
    return out


def _walk(tree: Any, key: str | None = None) -> Iterator[tuple[str | None, str]]:
    if isinstance(tree, str):
        yield key, tree
    elif isinstance(tree, dict):
        for k, v in tree.items():
            yield from _walk(v, k)
    elif isinstance(tree, list):
        for v in tree:
            yield from _walk(v, key)


def response_foreign(content_type: str, body: bytes, response: httpx.Response) -> list[str]:
    request = Request(content_type, body)
    if response.headers.get("content-type", "").startswith(ARROW_STREAM):
        import pyarrow as pa

        tree: Any = pa.ipc.open_stream(response.content).read_all().to_pylist()
    else:
        try:
            tree = response.json()
        except ValueError:
            tree = response.text
    found = []
    for key, value in _walk(tree):
        found += foreign_strings(request, key, value)
    return found


# ---------------------------------------------------------------- the server and sending


def alive(pid: int) -> bool:
    """The process exists and is not a zombie (its parent, us, has not reaped it yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


class LiveServer:
    """A uvicorn process that is restarted after it dies, counting the deaths."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.env, self.folder = env, folder
        self.deaths = 0
        self.starts = 0
        self._stack = ExitStack()
        self.server: Server | None = None
        self.http: httpx.Client | None = None

    def start(self) -> None:
        self.starts += 1
        log = self.folder / f"server-{self.starts}.log"
        self.server = self._stack.enter_context(uvicorn_server(self.env, log))
        self.http = self._stack.enter_context(httpx.Client(
            base_url=self.server.url, timeout=60,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16,
                                keepalive_expiry=2.0)))
        learn_served_text(self.http.get("/openapi.json").json())

    def healthy(self) -> bool:
        assert self.server is not None and self.http is not None
        for _ in (1, 2):  # twice: the pooled connection may be one a 500 closed
            if not alive(self.server.pid):
                return False
            try:
                return self.http.get("/healthz", timeout=10).status_code == 200
            except httpx.TransportError:
                pass
        return False

    def restart_if_dead(self) -> bool:
        """True when the server had died (and a new one now runs)."""
        if self.healthy():
            return False
        self.deaths += 1
        self._stack.close()
        self._stack = ExitStack()
        self.start()
        return True

    def close(self) -> None:
        self._stack.close()


def send(live: LiveServer, name: str, content_type: str, body: bytes,
         arrow_out: bool = False) -> Outcome:
    assert live.http is not None
    headers = {"content-type": content_type}
    if arrow_out:
        headers["accept"] = ARROW_STREAM
    start = time.monotonic()
    for attempt in (1, 2):
        try:
            r = live.http.post(ROUTE, content=body, headers=headers)
            break
        except httpx.TimeoutException:
            return Outcome(name, content_type, len(body), "timeout", time.monotonic() - start)
        except httpx.TransportError:
            # Once more on a new connection: uvicorn closes a connection after a 500 that
            # httpx may already have taken from its pool for the next request.
            assert live.server is not None
            if attempt == 2 or not alive(live.server.pid):
                return Outcome(name, content_type, len(body), "dropped",
                               time.monotonic() - start)
    seconds = time.monotonic() - start
    return Outcome(name, content_type, len(body), r.status_code, seconds,
                   response_foreign(content_type, body, r))


@dataclass
class Run:
    outcomes: list[Outcome] = field(default_factory=list)
    deaths: int = 0
    stopped_early: bool = False


def run_bodies(live: LiveServer, bodies: Iterable[tuple[str, str, bytes]], *,
               concurrency: int = 1, batch: int = 1, max_deaths: int = 3) -> Run:
    """Send `bodies`, `batch` at a time over `concurrency` connections, checking the server
    after each batch; a death marks the whole batch and restarts the server."""
    run = Run()
    pending: list[tuple[str, str, bytes]] = []

    def flush(pool: ThreadPoolExecutor) -> None:
        futures = [pool.submit(send, live, n, c, b, i % 4 == 3)
                   for i, (n, c, b) in enumerate(pending)]
        done = [f.result() for f in futures]
        if live.restart_if_dead():
            run.deaths += 1
            for o in done:
                o.died = True
        run.outcomes.extend(done)
        pending.clear()

    with ThreadPoolExecutor(concurrency) as pool:
        for item in bodies:
            pending.append(item)
            if len(pending) >= batch:
                flush(pool)
                if run.deaths >= max_deaths:
                    run.stopped_early = True
                    return run
        if pending:
            flush(pool)
    return run


# ---------------------------------------------------------------- databases and the table


@contextmanager
def database(kind: str, folder: Path) -> Iterator[str]:
    """A fresh SQLite file, or a fresh schema in HCT_TEST_DATABASE_URL (dropped after)."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'bulk.db'}"
        return
    from sqlalchemy import create_engine, text

    base = os.environ["HCT_TEST_DATABASE_URL"]
    schema = f"bulk_{uuid.uuid4().hex[:10]}"
    engine = create_engine(base)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        engine.dispose()


def databases() -> list[str]:
    on_postgres = os.environ.get("HCT_TEST_DATABASE_URL", "").startswith("postgresql")
    return ["sqlite", "postgresql"] if on_postgres else ["sqlite"]


def as_expected(case: BulkCase, outcome: Outcome) -> bool:
    if not outcome.clean_status or outcome.foreign or outcome.died:
        return False
    status = outcome.status
    assert isinstance(status, int)
    if case.expect == "rejected":
        return 400 <= status < 500
    if case.expect == "answered":
        return status == 200
    return True


@dataclass
class DatabaseRun:
    database: str
    corpus: list[tuple[BulkCase, Outcome]]
    fuzz: Run
    fuzz_seconds: float

    def summary(self) -> dict[str, Any]:
        outcomes = [o for _, o in self.corpus] + self.fuzz.outcomes
        return {
            "database": self.database, "cases": len(self.corpus),
            "cases_as_expected": sum(as_expected(c, o) for c, o in self.corpus),
            "bodies_fuzzed": len(self.fuzz.outcomes),
            "deaths": sum(o.died for _, o in self.corpus) + self.fuzz.deaths,
            "bad_answers": sum(not o.clean_status for o in outcomes),
            "foreign_byte_responses": sum(bool(o.foreign) for o in outcomes),
            "worst_seconds": round(max((o.seconds for o in outcomes), default=0.0), 2),
            "fuzz_statuses": dict(sorted(Counter(str(o.status)
                                                 for o in self.fuzz.outcomes).items())),
            "fuzz_seconds": round(self.fuzz_seconds, 1),
            "stopped_early": self.fuzz.stopped_early,
        }


def run_database(kind: str, folder: Path, *, fuzz_count: int, seed: int = 0,
                 cases: list[BulkCase] | None = None, concurrency: int = 4,
                 max_deaths: int = 5) -> DatabaseRun:
    folder.mkdir(parents=True, exist_ok=True)
    cases = bulk_corpus() if cases is None else cases
    with database(kind, folder) as url:
        env = {"HCT_DATABASE_URL": url, "HCT_UPLOAD_DIR": str(folder / "uploads"),
               "HCT_RUN_JOBS": "false"}
        live = LiveServer(env, folder)
        live.start()
        try:
            by_name = {c.name: c for c in cases}
            corpus = run_bodies(live, ((c.name, c.content_type, c.body) for c in cases),
                                max_deaths=max_deaths)
            start = time.monotonic()
            fuzz = Run(stopped_early=True) if corpus.stopped_early else run_bodies(
                live, fuzzed(fuzz_count, seed), concurrency=concurrency,
                batch=4 * concurrency, max_deaths=max_deaths - corpus.deaths)
            seconds = time.monotonic() - start
        finally:
            live.close()
    return DatabaseRun(kind, [(by_name[o.name], o) for o in corpus.outcomes], fuzz, seconds)


def bulk_rows(folder: Path, fuzz_count: int = 10_000, seed: int = 0
              ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(per-case rows of every database, one summary per database)."""
    cases = bulk_corpus()
    rows, summaries = [], []
    for kind in databases():
        result = run_database(kind, folder / kind, fuzz_count=fuzz_count, seed=seed,
                              cases=cases)
        summaries.append(result.summary())
        rows += [{"database": kind, "case": c.name, "bytes": len(c.body),
                  "expected": c.expect, "status": o.status, "seconds": round(o.seconds, 2),
                  "died": o.died, "foreign": o.foreign[:3], "ok": as_expected(c, o)}
                 for c, o in result.corpus]
        failures = [o for o in result.fuzz.outcomes if o.died or o.foreign
                    or not o.clean_status]
        rows += [{"database": kind, "case": o.name, "bytes": o.size, "expected": "clean",
                  "status": o.status, "seconds": round(o.seconds, 2), "died": o.died,
                  "foreign": o.foreign[:3], "ok": False} for o in failures[:20]]
    return rows, summaries


def _cell(text: str) -> str:
    """Text for a markdown table cell: escaped, one line, bounded."""
    return repr(text[:300])[1:-1].replace("|", "\\|")


def bulk_markdown(rows: list[dict[str, Any]], summaries: list[dict[str, Any]]) -> list[str]:
    lines = ["", "| bulk route (uvicorn) | corpus cases | as expected | bodies fuzzed | "
             "deaths | 5xx / dropped / timeouts | foreign-byte responses | worst s | "
             "fuzz statuses |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {s['database']} | {s['cases']} | {s['cases_as_expected']} | "
              f"{s['bodies_fuzzed']}{' (stopped early)' if s['stopped_early'] else ''} | "
              f"{s['deaths']} | {s['bad_answers']} | {s['foreign_byte_responses']} | "
              f"{s['worst_seconds']} | {s['fuzz_statuses']} |" for s in summaries]
    bad = [r for r in rows if not r["ok"]]
    if bad:
        lines += ["", "| bulk body not as expected | database | bytes | expected | status | "
                  "died | foreign bytes |", "|---|---|---|---|---|---|---|"]
        lines += [f"| {r['case']} | {r['database']} | {r['bytes']} | {r['expected']} | "
                  f"{r['status']} | {r['died']} | {_cell('; '.join(r['foreign']))} |"
                  for r in bad]
    return lines


def bulk_main(out: Path, fuzz_count: int, seed: int = 0) -> None:
    """`bench.reliability --only bulk`: this part alone, in results/reliability_bulk.*."""
    import tempfile

    from bench.results_io import write_results

    with tempfile.TemporaryDirectory() as tmp:
        rows, summaries = bulk_rows(Path(tmp), fuzz_count, seed)
    lines = ["# Reliability: the bulk route under the attack corpus and seeded fuzzing",
             *bulk_markdown(rows, summaries)]
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    write_results(out, "reliability_bulk", {"summaries": summaries, "rows": rows}, markdown)
