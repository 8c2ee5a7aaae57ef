"""The agent's command handling: validate, deduplicate, run, reply; apart from the frame loop.

Split from :mod:`device_agent.service.agent` because what a command does (and how it is made
idempotent) is its own contract, read and changed apart from the frame loop that calls it.

Commands (:mod:`device_agent.protocol.commands`) are taken between frames, in the agent's
thread (:meth:`CommandDesk.take`). A ``bench`` runs the model in a fresh process while
inference pauses, so the agent's own load does not disturb the numbers; the sources keep
capturing (newest frame wins) and the publisher keeps sending, so nothing builds up
meanwhile. A command is idempotent: its request_id is committed to the outbox database
before it runs and its final reply before it is sent, so the same request_id within
``commands.dedup_window_s`` gets that reply again (``"replay": true``), also after a
restart, and never a second run. No payload and no handler error stops the loop: each gets
an error reply (when the request_id can be read) and always a ``command`` event.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from device_agent.bench.options import BenchOptions, key_names
from device_agent.bench.runner import DEFAULT_DURATION_S, PROFILE_RUNS
from device_agent.bench.worker import bench_in_subprocess
from device_agent.bundle.verify import Bundle
from device_agent.errors import AgentError, BenchOptionsError, CommandError
from device_agent.protocol.base import ENVELOPE_FIELDS, Body, body_of
from device_agent.protocol.commands import BenchCommand, parse_command, request_id_of
from device_agent.protocol.events import BenchEvent, CommandEvent
from device_agent.protocol.messages import Reply, ReplyState
from device_agent.transport.outbox import Outbox, SeenRequest

log = logging.getLogger("edgekit.agent")

BENCH_TIMEOUT_MARGIN_S = 120.0
"""Time a bench child gets beyond its expected run (load, warm-up, profile) before it is killed."""
FINAL_STATES = frozenset({"done", "error", "refused"})
"""Reply states that end a request: the one recorded and replayed for a repeated request_id
(``running`` is interim; ``busy`` means it never ran, so the same request_id may be sent again)."""


class CommandDesk:
    """Takes commands off the publisher's queue and runs each through its handler, exactly once per request_id."""

    def __init__(self, waiting: queue.Queue[tuple[str, bytes, bool]], outbox: Outbox, *,
                 emit: Callable[[Body], None], dedup_window_s: float) -> None:
        """``waiting``: the publisher's ``(name, payload, retained)`` queue; ``emit`` queues a message for MQTT."""
        self.waiting = waiting
        self.outbox = outbox
        self.emit = emit
        self.dedup_window_s = dedup_window_s
        self.handlers: dict[str, Callable[[Any], None]] = {}
        """One per name in :data:`~device_agent.protocol.commands.COMMANDS`."""
        self._running: str | None = None  # request_id of the command being run, whose final reply is recorded

    def reply(self, request_id: str, command: str, state: ReplyState, **fields: Any) -> None:
        reply = Reply(request_id=request_id, state=state, command=command, **fields)
        if state in FINAL_STATES and request_id == self._running and self.dedup_window_s > 0:
            self.outbox.request_finished(request_id, body_of(reply))  # committed before it is queued: a repeat finds it
        self.emit(reply)

    def reject(self, name: str, request_id: str | None, reason: str, *, state: ReplyState = "error") -> None:
        """A command that will not run: reply (when we know where) and always say so on ``events``."""
        log.warning("command %r (request %s) %s: %s", name, request_id or "unknown",
                    "refused" if state == "refused" else "rejected", reason)
        if request_id is not None:
            key = "reason" if state == "refused" else "error"
            self.reply(request_id, name, state, **{key: reason})
        self.emit(CommandEvent(state="rejected", command=name, request_id=request_id, reason=reason))

    def take(self) -> bool:
        """Run every command that is waiting (never blocks when none is); True if there was one."""
        took = False
        while True:
            try:
                name, payload, retained = self.waiting.get_nowait()
            except queue.Empty:
                return took
            took = True
            self._command(name, payload, retained)

    def refuse_waiting(self, reason: str) -> None:
        """Refuse every command still waiting (the agent is stopping)."""
        while True:
            try:
                name, payload, _ = self.waiting.get_nowait()
            except queue.Empty:
                return
            self.reject(name, request_id_of(payload), reason, state="refused")

    def _command(self, name: str, payload: bytes, retained: bool) -> None:
        """Validate, deduplicate and run one command; whatever the payload, the agent keeps running."""
        if retained:  # a retained command would run again at every reconnect
            self.reject(name, request_id_of(payload), "retained commands are never honoured", state="refused")
            return
        try:
            command = parse_command(name, payload)
        except CommandError as exc:
            self.reject(name, exc.request_id, f"{type(exc).__name__}: {exc}")
            return
        rid, window_s = command.request_id, self.dedup_window_s
        seen = self.outbox.request_seen(rid, window_s=window_s) if window_s > 0 else None
        if seen is not None:
            self._replay(name, seen)
            return
        if window_s > 0:
            self.outbox.request_started(rid, name, window_s=window_s)  # committed before it runs
        self._running = rid
        try:
            self.handlers[name](command)
        except AgentError as exc:
            self.reply(rid, name, "error", error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # the command edge: a handler's bug is answered and logged with its traceback
            log.exception("command %r (request %s) failed", name, rid)
            self.reply(rid, name, "error", error=f"{type(exc).__name__}: {exc}")
        finally:
            self._running = None

    def _replay(self, name: str, seen: SeenRequest) -> None:
        """A request_id seen within the window: send its final reply again (marked ``replay``), never run it twice."""
        rid = seen.request_id
        if seen.reply is None:  # accepted, then the agent stopped before it finished: say so, once and for all
            reply = Reply(request_id=rid, state="error", command=seen.command,
                          error=f"request {rid} was interrupted: the agent stopped while running it "
                                f"(boot {seen.boot}); "
                                "it is not run twice: send it again with a new request_id")
            self.outbox.request_finished(rid, body_of(reply))
        else:  # as recorded (an older agent also recorded the envelope's keys; the envelope adds them again)
            recorded = {k: v for k, v in seen.reply.items() if k not in ENVELOPE_FIELDS and k != "device"}
            reply = Reply.model_validate(recorded, extra="ignore")
        log.info("command %r (request %s): already answered, replaying its %r reply", name, rid, reply.state)
        self.emit(CommandEvent(state="replayed", command=name, request_id=rid, first_received=seen.received))
        self.emit(reply.model_copy(update={"replay": True}))


class BenchHandler:
    """``bench``: measure the active bundle's model in a child process while inference pauses."""

    def __init__(self, desk: CommandDesk, *, bundle: Bundle, threads: int,
                 recent_infer_ms: Callable[[], Sequence[float]], cancel: threading.Event) -> None:
        """``recent_infer_ms``: the agent's recent inference latencies, to size the child's timeout;
        ``cancel``: set when the agent stops, which ends the child."""
        self.desk = desk
        self.bundle = bundle
        self.threads = threads
        self.recent_infer_ms = recent_infer_ms
        self.cancel = cancel

    def __call__(self, command: BenchCommand) -> None:
        desk, rid, sha256 = self.desk, command.request_id, self.bundle.manifest.model.sha256
        if command.model_sha256 is not None and command.model_sha256 != sha256:
            desk.reject("bench", rid, f"model sha256 mismatch: the request is for {command.model_sha256}, the active "
                        f"bundle {self.bundle.manifest.name!r} runs {sha256}", state="refused")
            return
        threads = self.threads if command.threads is None else command.threads
        try:
            options = BenchOptions(runs=command.runs, duration_s=command.duration_s, warmup=command.warmup,
                                   threads=threads, profile=command.profile, keep_samples=command.samples)
        except BenchOptionsError as exc:  # named by the command's keys, as the command's own errors are
            desk.reject("bench", rid, f"{type(exc).__name__}: {exc.render(key_names())}")
            return
        desk.reply(rid, "bench", "running")
        desk.emit(BenchEvent(state="started", request_id=rid))
        log.info("bench %s: inference pauses while the model is measured", rid)
        try:  # synchronous on purpose: inference waits, so the numbers are the model's alone
            record = bench_in_subprocess(self.bundle.root, options, timeout_s=self.timeout_s(options),
                                         cancel=self.cancel)
        except (AgentError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("bench %s failed: %s", rid, error)
            desk.emit(BenchEvent(state="failed", request_id=rid, error=error))
            desk.reply(rid, "bench", "error", error=error)
            return
        log.info("bench %s: %s runs, p50 %s ms", rid, record.runs, record.latency_ms.p50)
        desk.emit(BenchEvent(state="finished", request_id=rid, runs=record.runs, p50_ms=record.latency_ms.p50))
        desk.reply(rid, "bench", "done", result=record.to_json())  # the envelope says which device

    def timeout_s(self, options: BenchOptions) -> float:
        """How long the bench child may take: its expected run, estimated generously, plus a margin."""
        infer = self.recent_infer_ms()
        per_run_s = 4.0 * float(np.percentile(np.asarray(infer), 90)) / 1e3 if len(infer) else 1.0
        if options.duration_s is not None:
            timed_s = options.duration_s
        elif options.runs is not None:
            timed_s = options.runs * per_run_s
        else:
            timed_s = DEFAULT_DURATION_S
        warmup_s = options.max_warmup_s if options.warmup is None else options.warmup * per_run_s
        profile_s = (PROFILE_RUNS + 3) * per_run_s if options.profile else 0.0
        return timed_s + warmup_s + profile_s + BENCH_TIMEOUT_MARGIN_S
