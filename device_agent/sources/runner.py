"""A supervised camera source: read in a thread, watch the last good frame, reconnect with backoff.

Two kinds of thread, so that nothing the camera does can block the supervisor:

- a *connection* thread owns one backend: it opens it, reads, paces files to ``fps``, loops
  files, and hands images to the runner. An open or read that hangs (OpenCV can block on a
  dead RTSP server) only hangs this thread, which is abandoned and closes its backend if it
  ever returns; a frame from an abandoned connection is discarded.
- the *supervisor* thread owns the state machine: it starts a connection, watches the time of
  the last good frame on the monotonic clock, and on a failed open, a read error or a stall
  publishes RECONNECTING with the attempt number and waits a capped, jittered exponential
  backoff before the next connection. Only this thread changes state, so ``on_state`` sees
  changes in order.

Only a finite source (file, folder) without ``loop`` ends. A live source (camera, stream) is
retried forever, however it fails: a read that gives nothing is a read error, not an end.

The two timeouts are ordered, not independent: the read (and open) timeout defaults to the stall
limit plus :data:`READ_TIMEOUT_MARGIN_S` and must be longer than it. So a camera that stops
sending is seen by the watchdog as a stall (after ``stall_after_s``, 3 s by default, reported as
STALLED) before its read gives up; the read timeout then only ends the abandoned connection's
thread and closes its capture, which keeps threads and descriptors from piling up across
reconnects. (With both at 5 s, the read timed out first and the camera looked finished.)
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from device_agent.errors import SourceError
from device_agent.sources.connection import Connection
from device_agent.sources.latest import LatestFrame
from device_agent.sources.registry import SourceSpec, open_source, source_kind
from device_agent.sources.types import (
    DEFAULT_STALL_AFTER_S,
    READ_TIMEOUT_MARGIN_S,
    Frame,
    SourceState,
    StateChange,
    default_read_timeout_s,
    transition,
)

log = logging.getLogger(__name__)
DEFAULT_BACKOFF_MAX_S = 5.0
"""Longest wait between reconnect attempts: a camera back after a long outage streams within it."""
_POLL_S = 0.05


class SourceRunner:
    """Runs one source in the background and keeps its newest frame in :attr:`frames`.

    ``fps`` paces files and folders in real time (absent: as fast as they decode); live
    sources run at the camera's rate. ``loop`` restarts a file or folder at its end; without
    it the end of a file is STOPPED ("end of stream"), finished, with no reconnect. A live
    source never ends: it reconnects until :meth:`stop`.
    ``stall_after_s`` without a good frame (at least two frame periods when paced) is a stall.
    ``read_timeout_s`` bounds an open (and, where the backend supports it, a read); it defaults
    to ``stall_after_s`` + 2 s and must be longer than ``stall_after_s`` (see the module docstring).
    Reconnect attempts are numbered from 1 and back off ``backoff_initial_s`` doubling up to
    ``backoff_max_s``; the count starts again only after a connection streamed for at least
    ``stall_after_s``. The cap is what bounds recovery: a camera that comes back after a long
    outage streams again within ``backoff_max_s`` plus one open (5 s by default, so under 10 s;
    a reconnect attempt every 5 s costs a dead camera one TCP connect).
    """

    def __init__(
        self,
        uri: str,
        *,
        name: str,
        loop: bool = False,
        fps: float | None = None,
        read_timeout_s: float | None = None,
        stall_after_s: float = DEFAULT_STALL_AFTER_S,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = DEFAULT_BACKOFF_MAX_S,
        on_state: Callable[[StateChange], None] | None = None,
        kind: str | None = None,
        follow_consumer: bool = False,
        prepare: Callable[[np.ndarray], Any] | None = None,
    ) -> None:
        if read_timeout_s is None:
            read_timeout_s = default_read_timeout_s(stall_after_s)
        for key, value in (("read_timeout_s", read_timeout_s), ("stall_after_s", stall_after_s),
                           ("backoff_initial_s", backoff_initial_s), ("backoff_max_s", backoff_max_s),
                           ("fps", fps if fps is not None else 1.0)):  # fmt: skip
            if not value > 0:
                raise SourceError(f"source {name!r}: {key} must be > 0, got {value}")
        if not read_timeout_s > stall_after_s:
            raise SourceError(
                f"source {name!r}: read_timeout_s ({read_timeout_s:g} s) must be longer than stall_after_s "
                f"({stall_after_s:g} s), so that a stall is detected before a read gives up; leave read_timeout_s "
                f"unset for stall_after_s + {READ_TIMEOUT_MARGIN_S:g} s"
            )
        self.name, self.uri, self.loop, self.fps = name, uri, loop, fps
        self.read_timeout_s, self.stall_after_s = read_timeout_s, stall_after_s
        self.backoff_initial_s, self.backoff_max_s = backoff_initial_s, max(backoff_initial_s, backoff_max_s)
        self.on_state = on_state
        # A file with no fps: read each frame only when the previous one was taken, so inference
        # sees every frame of the file. A live source never waits.
        self.follow_consumer = follow_consumer and fps is None
        # Work done on each image in the source's own thread (the agent's preprocessing), so it
        # overlaps with inference on the previous frame.
        self.prepare = prepare
        # Resolve the kind once: a bad URI fails here, and a file deleted later stays a file.
        self._spec = SourceSpec(uri, kind=kind or source_kind(uri), open_timeout_s=read_timeout_s,
                                read_timeout_s=read_timeout_s)
        self.finite = open_source(self._spec).finite  # an unknown kind fails now, not in a thread
        self.frames = LatestFrame()
        self._lock = threading.Lock()
        self._state = SourceState.STARTING
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_id = 0
        self._last_frame_ns: int | None = None
        self._reconnects = 0
        self._rng = random.Random()
        self._logged_reason: str | None = None  # reason of the last trouble logged (see _log_level)
        self.ended = False  # True once a finite source reached its end: the one way to stop by itself

    @property
    def kind(self) -> str:
        return self._spec.kind or ""

    @property
    def state(self) -> SourceState:
        return self._state

    def start(self) -> SourceRunner:
        if self._thread is not None or self._stop.is_set():
            raise SourceError(f"source {self.name!r} was already started; make a new SourceRunner")
        self._thread = threading.Thread(target=self._supervise, name=f"source-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> bool:
        """Stop and join the supervisor; True if it ended within ``timeout``. State is STOPPED after."""
        self._stop.set()
        self._wake.set()
        ended = True
        if self._thread is not None:
            self._thread.join(timeout)
            ended = not self._thread.is_alive()
        if self._state is not SourceState.STOPPED:  # never started, or the supervisor is stuck
            self._set_state(SourceState.STOPPED, "stopped")
        self.frames.close()
        return ended

    def stats(self) -> dict[str, Any]:
        last = self._last_frame_ns
        return {
            "state": self._state.value,
            "frames_read": self.frames.put_count,
            "frames_dropped": self.frames.dropped,
            "reconnects": self._reconnects,
            "last_frame_age_s": None if last is None else (time.monotonic_ns() - last) / 1e9,
        }

    def backoff_s(self, attempt: int) -> float:
        """Delay before reconnect ``attempt`` (1, 2, ...): doubling from the initial, capped, +-10% jitter."""
        base = min(self.backoff_max_s, self.backoff_initial_s * 2.0 ** min(attempt - 1, 60))
        return min(self.backoff_max_s, base * self._rng.uniform(0.9, 1.1))

    # -- connection thread side ------------------------------------------------------------

    def _deliver(self, conn: Connection, image: np.ndarray) -> None:
        read_ns = time.monotonic_ns()
        prepared = self.prepare(image) if self.prepare is not None else None
        with self._lock:
            if conn.cancelled.is_set():
                return  # an abandoned connection came back late
            now_ns = read_ns
            frame = Frame(frame_id=self._next_id, source=self.name, captured_ns=now_ns, wall_time=time.time(),
                          image=image, prepared=prepared)
            self._next_id += 1
            self._last_frame_ns = now_ns
            conn.frames += 1
            conn.first_frame_ns = conn.first_frame_ns or now_ns
            conn.last_frame_ns = now_ns
            self.frames.put(frame)
        self._wake.set()

    def _wait_taken(self, cancelled: threading.Event) -> None:
        if not self.follow_consumer:
            return
        self.frames.wait_taken(cancelled)
        with self._lock:
            self._last_frame_ns = time.monotonic_ns()  # waiting on the consumer is not a stall

    # -- supervisor thread -----------------------------------------------------------------

    def _supervise(self) -> None:
        attempt, number, conn = 0, 0, None
        try:
            while not self._stop.is_set():
                number += 1
                conn = Connection(self._spec, name=self.name, number=number, loop=self.loop, fps=self.fps,
                                  deliver=self._deliver, wake=self._wake, wait_taken=self._wait_taken)  # fmt: skip
                conn.start()
                outcome, reason = self._watch(conn)
                conn.cancelled.set()
                if outcome == "stop":
                    break
                if outcome == "eos" and self.finite:
                    self.ended = True  # before STOPPED: whoever sees STOPPED must see why
                    self._set_state(SourceState.STOPPED, "end of stream")
                    break
                if outcome == "eos":  # a live backend must never end the runner; reconnect instead
                    reason = "the live stream reported its end"
                # Only a connection that streamed for a while restarts the backoff; one that
                # fails after a few frames each time (a half-corrupt file, a flapping camera)
                # must not turn into a tight reconnect loop.
                healthy_s = (conn.last_frame_ns - conn.first_frame_ns) / 1e9 if conn.frames else 0.0
                attempt = 1 if healthy_s >= self.stall_after_s else attempt + 1
                delay = self.backoff_s(attempt)
                self._reconnects += 1
                self._set_state(SourceState.RECONNECTING, reason, attempt=attempt, retry_in_s=delay)
                self._stop.wait(delay)
        finally:
            if conn is not None:
                conn.cancelled.set()
                conn.join(min(1.0, self.read_timeout_s))  # lets a file backend close; a hung one is left behind
            if self._state is not SourceState.STOPPED:
                self._set_state(SourceState.STOPPED, "stopped")
            self.frames.close()

    def _watch(self, conn: Connection) -> tuple[str, str]:
        """Wait until the connection ends, fails, stalls or the runner stops; keep the state current."""
        started = time.monotonic()
        stall_s = max(self.stall_after_s, 2.0 / self.fps) if self.fps else self.stall_after_s
        while True:
            self._wake.clear()
            if self._stop.is_set():
                return "stop", "stopped"
            if conn.frames and self._state is not SourceState.STREAMING:
                self._set_state(SourceState.STREAMING, "frames arriving")
            if conn.outcome is not None:
                return conn.outcome, conn.reason
            now = time.monotonic()
            if conn.opened_ns is None:
                if now - started > self.read_timeout_s:
                    return "error", f"open did not finish within {self.read_timeout_s:g} s; abandoned it"
            else:
                last_ns = max(conn.opened_ns, self._last_frame_ns or 0)
                age = now - last_ns / 1e9
                if age > stall_s:
                    if self._state is SourceState.STREAMING:
                        self._set_state(SourceState.STALLED, f"no frame for {age:.1f} s")
                        return "stall", f"stalled: no frame for {age:.1f} s"
                    return "error", f"opened, but no frame within {stall_s:g} s"
            self._wake.wait(_POLL_S)

    def _log_level(self, change: StateChange) -> int:
        """WARNING for trouble, INFO for good news; a camera that stays away is not a new story.

        Every attempt is still published (``on_state``), but a retry that fails for the same
        reason as the last one is logged at DEBUG, except at attempts 2, 4, 8, 16, ... (a
        reminder that thins out: a camera gone for a day adds about a dozen lines to the
        journal, not one every ``backoff_max_s``).
        """
        if change.new not in (SourceState.STALLED, SourceState.RECONNECTING):
            self._logged_reason = None
            return logging.INFO
        same = change.old is SourceState.RECONNECTING and change.reason == self._logged_reason
        self._logged_reason = change.reason
        if same and change.attempt & (change.attempt - 1):  # not a power of two
            return logging.DEBUG
        return logging.WARNING

    def _set_state(self, new: SourceState, reason: str, *, attempt: int = 0, retry_in_s: float | None = None) -> None:
        with self._lock:
            old = self._state
            if old is new and new is not SourceState.RECONNECTING:
                return
            if old is SourceState.STOPPED and self._stop.is_set():
                return  # stop() gave up waiting and already declared STOPPED; that stands
            self._state = transition(old, new)
            change = StateChange(self.name, old, new, reason, time.time(), attempt, retry_in_s)
        retry = f", attempt {attempt}, retry in {retry_in_s:.2f} s" if retry_in_s is not None else ""
        log.log(self._log_level(change), "source %s: %s -> %s (%s%s)", self.name, old.name, new.name, reason, retry)
        if self.on_state is not None:
            try:
                self.on_state(change)
            except Exception:  # a listener's bug must not stop the camera; logged with traceback
                log.exception("source %s: on_state listener raised", self.name)
