"""Group commit: results wait a few milliseconds in memory and are committed in one transaction.

With ``synchronous=FULL`` every commit is an fsync (0.8 ms on this machine's disk, several
ms on an SD card). Committing in batches takes that cost off the inference loop. What is
committed is as durable as before; a crash can lose only what was still queued (at most
``max_batch`` results or ``max_wait_s``), which never got a seq, like a frame that was
still in the camera's slot.

The agent queues protocol models (:mod:`device_agent.protocol`); they are dumped to their
JSON form here, in this thread, so the inference loop pays only for building them.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from device_agent.protocol.base import Body, body_of
from device_agent.transport.outbox import Outbox

log = logging.getLogger("edgekit.agent")


class Committer:
    """A thread that commits queued (topic, body) pairs to the outbox in batches."""

    def __init__(self, outbox: Outbox, *, on_commit: Callable[[], None], max_batch: int = 64,
                 max_wait_s: float = 0.02, max_queue: int = 1024) -> None:
        self.outbox = outbox
        self._on_commit = on_commit
        self._max_batch, self._max_wait_s = max_batch, max_wait_s
        self._queue: queue.Queue[tuple[str, Body | dict[str, Any]] | None] = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="outbox-committer", daemon=True)
        self._error: BaseException | None = None
        self.batches = 0
        self.committed = 0
        """Messages committed so far."""
        self.busy_ns = 0
        """Time this thread spent dumping and committing (not waiting): what group commit takes off the caller."""

    def start(self) -> Committer:
        self._thread.start()
        return self

    def put(self, topic: str, body: Body | dict[str, Any]) -> None:
        """Queue one message, a protocol model (or a dict already in its wire form); blocks when the queue is
        full: back-pressure, never a silent drop."""
        if self._error is not None:
            raise self._error
        self._queue.put((topic, body))

    def close(self, timeout: float = 10.0) -> None:
        """Commit everything queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        done = False
        while not done:
            item = self._queue.get()
            batch: list[tuple[str, dict[str, Any]]] = []
            busy_ns = 0
            while item is not None:
                topic, body = item
                t0 = time.perf_counter_ns()
                batch.append((topic, body if isinstance(body, dict) else body_of(body)))
                busy_ns += time.perf_counter_ns() - t0
                if len(batch) >= self._max_batch:
                    break
                try:
                    item = self._queue.get(timeout=self._max_wait_s)
                except queue.Empty:
                    break
            done = item is None
            if batch:
                t0 = time.perf_counter_ns()
                try:
                    self.outbox.add_many(batch)
                except BaseException as exc:  # noqa: BLE001  kept and re-raised in the agent's thread by put()/close()
                    log.error("outbox commit failed: %s", exc)
                    self._error = exc
                    return
                self.busy_ns += busy_ns + time.perf_counter_ns() - t0
                self.batches += 1
                self.committed += len(batch)
                self._on_commit()
