"""One progress bar for the long loops (training, evaluation, simulation, offline scoring).

`rich` draws it on stderr with done/total, rate and ETA; when stderr is not a terminal (a log
file, CI, a pipe) it draws nothing, so logs hold results rather than redraws. No torch here:
the service's `hct score` uses it too.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _RateColumn(ProgressColumn):
    """Items per second in the loop's own unit (rich's speed column counts bytes)."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.completed and task.elapsed:  # one step so far: the mean
            speed = task.completed / task.elapsed
        return Text("-" if speed is None else f"{speed:,.1f} {self.unit}/s")


class Bar:
    """What a loop calls: `advance(n)` after n more items, `note(text)` for a live figure."""

    def __init__(self, progress: Progress, task: int) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        self._progress.advance(self._task, n)

    def note(self, text: str) -> None:
        self._progress.update(self._task, note=text)


@contextmanager
def progress_bar(total: int | None, label: str, *, unit: str = "items",
                 console: Console | None = None) -> Iterator[Bar]:
    """A bar for `total` items (None: unknown), drawn only when `console` is a terminal."""
    console = console or Console(stderr=True)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               _RateColumn(unit), TimeElapsedColumn(), TextColumn("ETA"),
               TimeRemainingColumn(), TextColumn("{task.fields[note]}"))
    with Progress(*columns, console=console, transient=True,
                  disable=not console.is_terminal) as progress:
        yield Bar(progress, progress.add_task(label, total=total, note=""))
