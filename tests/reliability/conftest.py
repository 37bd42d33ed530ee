"""The malformed-upload corpus, built once per session (a few seconds, a few MB on disk)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability.corpus import Case, build_corpus


@pytest.fixture(scope="session")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Case]:
    return build_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="session")
def corpus_by_name(corpus: list[Case]) -> dict[str, Case]:
    return {c.name: c for c in corpus}


def case_path(corpus_by_name: dict[str, Case], name: str) -> Path:
    return corpus_by_name[name].path
