"""Progress on stderr: what the command is doing, wherever its stderr goes; silence for library callers.

Three ways, chosen once from the console:

- off (``enabled=False``, the default of the Python API): nothing is printed;
- live, on a terminal: rich's step list, a bar with ``done/total`` inside steps that report it
  (layer i of N, frame i of N), the elapsed time, ✓ for a finished step and a red ✗ for a failed one;
- lines, anywhere else (CI, journald, ``| tee``): one timestamped line when a step starts and one
  when it ends with its duration (``FAILED after 3.2 s`` when it raised), a progress line at most
  every :data:`PROGRESS_EVERY_S` inside a long step, never wrapped or cut at 80 columns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

Advance = Callable[[int, int], None]

PROGRESS_EVERY_S = 15.0
"""In lines mode, the least time between two progress lines of one step (a start and an end always print)."""


def _seconds(elapsed: float) -> str:
    return f"{elapsed:.1f} s" if elapsed < 60 else f"{int(elapsed // 60)} min {elapsed % 60:04.1f} s"


class _StateColumn(ProgressColumn):
    """A spinner while a step runs, then ✓ or a red ✗."""

    def __init__(self) -> None:
        super().__init__()
        self._spinner = SpinnerColumn()

    def render(self, task: Task) -> Text:
        state = task.fields.get("state")
        if state == "failed":
            return Text("✗", style="bold red")
        if state == "done":
            return Text("✓", style="green")
        rendered = self._spinner.render(task)
        return rendered if isinstance(rendered, Text) else Text(str(rendered))


class _CountColumn(ProgressColumn):
    """``done/total`` for a step that reports a total; nothing (not ``0/?``) for one that does not."""

    def render(self, task: Task) -> Text:
        if task.total is None or task.fields.get("counted") is False:
            return Text("")
        return Text(f"{int(task.completed)}/{int(task.total)}", style="progress.download")


class Steps:
    """``with steps.step("Quantizing", total=N) as advance: advance(done, total)``.

    ``enabled=False`` prints nothing. Otherwise the console (default: stderr, never wrapped)
    decides: a terminal gets the live step list, anything else one line per step start and end.
    """

    def __init__(self, *, enabled: bool = False, console: Console | None = None) -> None:
        self.enabled = enabled
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.live = enabled and self.console.is_terminal
        self._progress: Progress | None = None

    def __enter__(self) -> Steps:
        if self.live:
            self._progress = Progress(
                _StateColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                _CountColumn(),
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
        """One step; the ``advance(done, total)`` it yields reports progress inside it. An exception
        raised inside the step shows it as failed (and goes on up)."""
        if not self.enabled:
            yield lambda done, total: None
        elif self._progress is not None:
            with self._live_step(self._progress, description, total) as advance:
                yield advance
        else:
            with self._line_step(description) as advance:
                yield advance

    @contextmanager
    def sequence(self) -> Iterator[Callable[[str], None]]:
        """Steps that follow each other: ``begin(description)`` ends the step before (as done) and starts
        the next one; leaving the block ends the last (as failed if an exception leaves it). For callbacks
        that report phases (``on_phase("warmup")``) rather than a start and an end."""
        with ExitStack() as current:

            def begin(description: str) -> None:
                current.close()
                current.enter_context(self.step(description))

            yield begin

    def note(self, message: str) -> None:
        if self.enabled:
            self.console.print(message if self.live else f"{self._now()} {message}", markup=self.live,
                               highlight=False, soft_wrap=True)

    @contextmanager
    def _live_step(self, progress: Progress, description: str, total: int | None) -> Iterator[Advance]:
        task = progress.add_task(description, total=total, state="running")

        def advance(done: int, new_total: int) -> None:
            progress.update(task, completed=done, total=new_total)

        try:
            yield advance
        except BaseException:
            current = progress.tasks[task]
            progress.update(task, state="failed", description=f"[red]{description} — failed[/]",
                            total=current.total or 1, counted=current.total is not None)
            progress.stop_task(task)
            raise
        current = progress.tasks[task]
        progress.update(task, state="done", completed=current.total or 1, total=current.total or 1,
                        counted=current.total is not None)
        progress.stop_task(task)

    @contextmanager
    def _line_step(self, description: str) -> Iterator[Advance]:
        self._line(f"{description} ...")
        started = last = time.monotonic()

        def advance(done: int, new_total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY_S and done < new_total:
                last = now
                self._line(f"{description}: {done}/{new_total} ({_seconds(now - started)})")

        try:
            yield advance
        except BaseException as exc:
            self._line(f"{description}: FAILED after {_seconds(time.monotonic() - started)} ({type(exc).__name__})")
            raise
        self._line(f"{description}: done in {_seconds(time.monotonic() - started)}")

    def _line(self, text: str) -> None:
        self.console.print(f"{self._now()} {text}", markup=False, highlight=False, soft_wrap=True)

    @staticmethod
    def _now() -> str:
        return time.strftime("%H:%M:%S")
