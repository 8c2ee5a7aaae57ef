"""Progress on stderr: a rich progress display for the CLI, silence for library callers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

Advance = Callable[[int, int], None]


class Steps:
    """``with steps.step("Quantizing", total=N) as advance: advance(done, total)``."""

    def __init__(self, *, enabled: bool = False, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True)
        self._progress: Progress | None = None

    def __enter__(self) -> Steps:
        if self.enabled:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    @contextmanager
    def step(self, description: str, total: int | None = None) -> Iterator[Advance]:
        if self._progress is None:
            yield lambda done, total: None
            return
        task = self._progress.add_task(description, total=total)

        def advance(done: int, new_total: int) -> None:
            assert self._progress is not None
            self._progress.update(task, completed=done, total=new_total)

        try:
            yield advance
        finally:
            current = self._progress.tasks[task]
            self._progress.update(task, completed=current.total or 1, total=current.total or 1)

    def note(self, message: str) -> None:
        if self.enabled:
            self.console.print(message)
