"""The agent's main loop: newest frame -> preprocess -> infer -> decode -> outbox -> MQTT.

Capture runs in each source's own thread (newest frame wins, so a slow model never builds
a backlog); this loop takes the newest frame of each source in turn. Every result is
committed to the durable outbox before MQTT sees it; the publisher deletes it on PUBACK.

Every message is built through the contract's models (:mod:`device_agent.protocol`) and
queued as such; the committer dumps it to JSON in its own thread.

Commands (:mod:`device_agent.protocol.commands`) are taken between frames, in this thread. A ``bench``
runs the model in a fresh process while inference pauses, so the agent's own load does not
disturb the numbers; the sources keep capturing (newest frame wins) and the publisher keeps
sending, so nothing builds up meanwhile. A command is idempotent: its request_id is committed
to the outbox database before it runs and its final reply before it is sent, so the same
request_id within ``commands.dedup_window_s`` gets that reply again (``"replay": true``),
also after a restart, and never a second run. No payload and no handler error stops the loop:
each gets an error reply (when the request_id can be read) and always a ``command`` event.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device_agent import __version__
from device_agent.bench.options import BenchOptions, key_names
from device_agent.bench.runner import DEFAULT_DURATION_S, PROFILE_RUNS
from device_agent.bench.worker import bench_in_subprocess
from device_agent.errors import AgentError, BenchOptionsError, CommandError, PreprocessError, SourceStoppedError
from device_agent.pipeline.decoders import decode
from device_agent.pipeline.policy import PublishPolicy
from device_agent.pipeline.preprocess import FrameTransform, dequantize, preprocess, quantize
from device_agent.pipeline.rules import Rule
from device_agent.protocol.base import ENVELOPE_FIELDS, Body, body_of
from device_agent.protocol.commands import BenchCommand, parse_command, request_id_of
from device_agent.protocol.events import BenchEvent, CameraEvent, CommandEvent, FrameEvent, ModelEvent, OutboxEvent
from device_agent.protocol.messages import LinkStats, Metrics, Reply, ReplyState, SourceStats, StageLatency
from device_agent.protocol.results import Decoded, FrameRef, ModelRef, Result
from device_agent.protocol.topics import Topics
from device_agent.service.config import AgentConfig, mqtt_password
from device_agent.service.health import CpuMeter, rss_mb, temperature_c
from device_agent.service.logs import Totals, shutdown_line, startup_line, summary_line
from device_agent.service.preflight import preflight
from device_agent.service.systemd import Notifier
from device_agent.sources.runner import SourceRunner
from device_agent.sources.types import SourceState, StateChange
from device_agent.transport.committer import Committer
from device_agent.transport.outbox import Outbox, SeenRequest
from device_agent.transport.publisher import Identity, MqttSettings, Publisher

log = logging.getLogger("edgekit.agent")

BENCH_TIMEOUT_MARGIN_S = 120.0
"""Time a bench child gets beyond its expected run (load, warm-up, profile) before it is killed."""
FINAL_STATES = frozenset({"done", "error", "refused"})
"""Reply states that end a request: the one recorded and replayed for a repeated request_id
(``running`` is interim; ``busy`` means it never ran, so the same request_id may be sent again)."""


@dataclass
class StageTimes:
    """Recent per-stage latencies in ms (a bounded window) for the metrics heartbeat."""

    window: int = 500
    samples: dict[str, deque[float]] = field(default_factory=dict)

    def add(self, stage: str, ms: float) -> None:
        self.samples.setdefault(stage, deque(maxlen=self.window)).append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        out = {}
        for stage, values in self.samples.items():
            arr = np.asarray(values)
            out[stage] = {q: round(float(np.percentile(arr, p)), 3)
                          for q, p in (("p50", 50), ("p90", 90), ("p95", 95), ("p99", 99))}
        return out


def _str(path: object) -> str | None:
    return None if path is None else str(path)


class Agent:
    """One agent process: a bundle, its sources, the outbox and the MQTT publisher."""

    def __init__(self, config: AgentConfig, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        ready = preflight(config)  # every check check-config runs, golden self-test included, before any I/O
        self.bundle, self.runtime, self.threads = ready.bundle, ready.runtime, ready.threads
        manifest = self.bundle.manifest
        self.topics = Topics(config.device_id, config.mqtt.topic_root)
        self.model_ref = ModelRef(name=manifest.name, version=manifest.version, precision=manifest.precision)
        self.outbox = Outbox(config.outbox.path, device_id=config.device_id, max_rows=config.outbox.max_rows,
                             max_age_s=config.outbox.max_age_s, gap_topic=self.topics.events, headroom=0.1)
        mqtt = config.mqtt
        self.publisher = Publisher(
            MqttSettings(host=mqtt.host, port=mqtt.port, client_id=mqtt.client_id or f"edgekit-{config.device_id}",
                         username=mqtt.username, password=mqtt_password(config),
                         tls_ca=_str(mqtt.tls.ca if mqtt.tls else None),
                         tls_cert=_str(mqtt.tls.cert if mqtt.tls else None),
                         tls_key=_str(mqtt.tls.key if mqtt.tls else None), keepalive=mqtt.keepalive_s,
                         protocol=mqtt.protocol),
            self.outbox, device_id=config.device_id, topic_root=mqtt.topic_root, on_event=self._said,
            status_body=Identity(agent=__version__, model=self.model_ref),
        )
        self.sources = [
            SourceRunner(s.uri, name=config.source_name(i), loop=s.loop, fps=s.fps, read_timeout_s=s.read_timeout_s,
                         stall_after_s=s.stall_after_s, backoff_initial_s=s.backoff_initial_s,
                         backoff_max_s=s.backoff_max_s, on_state=self._on_state, follow_consumer=True,
                         prepare=self._prepare)
            for i, s in enumerate(config.sources)
        ]
        self.committer = Committer(self.outbox, on_commit=self._committed)
        self.policy = PublishPolicy(config.publish.policy, max_per_second=config.publish.max_per_second)
        self.rules = [Rule(r) for r in config.rules]
        self.times = StageTimes()
        self.stop_event = threading.Event()
        self.systemd = Notifier()  # READY, WATCHDOG and STOPPING to systemd when run as a Type=notify service
        self.frames_done = 0
        self.results_published = 0
        self._clock = clock
        self.stop_reason = "not started"
        self._cpu = CpuMeter()
        self._handlers: dict[str, Callable[[Any], None]] = {"bench": self._bench}  # one per name in COMMANDS
        self._running: str | None = None  # request_id of the command being run, whose final reply is recorded

    # -- messages -------------------------------------------------------------------
    def _emit(self, message: Body) -> None:
        """Queue one message for the group committer; it reaches MQTT only once it is on disk."""
        name = message.request_id if isinstance(message, Reply) else None
        self.committer.put(self.topics.of(message.topic_kind, name), message)

    def _said(self, suffix: str, body: dict[str, Any]) -> None:
        """What the publisher has to say (built through the protocol models there), on ``events`` or ``reply/<id>``."""
        self.committer.put(self.topics.suffix(suffix), body)

    def _committed(self) -> None:
        for gap in self.outbox.take_gaps():  # the outbox wrote a pinned gap event for each drop
            log.warning("outbox bounds (%s): dropped seq %s (%d rows)", gap.reason, gap.describe(), gap.count)
        self.publisher.notify()

    def _on_state(self, change: StateChange) -> None:  # the runner has logged it; published, not logged again
        self._emit(CameraEvent(source=change.source, from_=change.old.name.lower(), to=change.new.name.lower(),
                               reason=change.reason, attempt=change.attempt))

    def _metrics(self) -> None:
        dropped = sum(s.stats().get("frames_dropped", 0) for s in self.sources)
        elapsed = max(self._clock() - self._started, 1e-9)
        self._emit(Metrics(
            fps=round(self.frames_done / elapsed, 3), frames=self.frames_done, dropped_frames=dropped,
            results=self.results_published, suppressed=self.policy.suppressed,
            latency_ms={stage: StageLatency(**q) for stage, q in self.times.summary().items()},
            outbox_depth=self.outbox.depth(), cpu_percent=round(self._cpu.percent(), 1),
            rss_mb=round(rss_mb(), 1), temperature_c=temperature_c(),
            sources={s.name: SourceStats(**{"state": s.state.name.lower(), **s.stats()}) for s in self.sources},
            mqtt=LinkStats(**self.publisher.stats()),
        ))

    # -- commands -----------------------------------------------------------------------
    def _reply(self, request_id: str, command: str, state: ReplyState, **fields: Any) -> None:
        reply = Reply(request_id=request_id, state=state, command=command, **fields)
        if state in FINAL_STATES and request_id == self._running and self.config.commands.dedup_window_s > 0:
            self.outbox.request_finished(request_id, body_of(reply))  # committed before it is queued: a repeat finds it
        self._emit(reply)

    def _reject(self, name: str, request_id: str | None, reason: str, *, state: ReplyState = "error") -> None:
        """A command that will not run: reply (when we know where) and always say so on ``events``."""
        log.warning("command %r (request %s) %s: %s", name, request_id or "unknown",
                    "refused" if state == "refused" else "rejected", reason)
        if request_id is not None:
            key = "reason" if state == "refused" else "error"
            self._reply(request_id, name, state, **{key: reason})
        self._emit(CommandEvent(state="rejected", command=name, request_id=request_id, reason=reason))

    def take_commands(self) -> bool:
        """Run every command that is waiting (never blocks when none is); True if there was one."""
        took = False
        while True:
            try:
                name, payload, retained = self.publisher.commands.get_nowait()
            except queue.Empty:
                return took
            took = True
            self._command(name, payload, retained)

    def _command(self, name: str, payload: bytes, retained: bool) -> None:
        """Validate, deduplicate and run one command; whatever the payload, the agent keeps running."""
        if retained:  # a retained command would run again at every reconnect
            self._reject(name, request_id_of(payload), "retained commands are never honoured", state="refused")
            return
        try:
            command = parse_command(name, payload)
        except CommandError as exc:
            self._reject(name, exc.request_id, f"{type(exc).__name__}: {exc}")
            return
        rid, window_s = command.request_id, self.config.commands.dedup_window_s
        seen = self.outbox.request_seen(rid, window_s=window_s) if window_s > 0 else None
        if seen is not None:
            self._replay(name, seen)
            return
        if window_s > 0:
            self.outbox.request_started(rid, name, window_s=window_s)  # committed before it runs
        self._running = rid
        try:
            self._handlers[name](command)
        except AgentError as exc:
            self._reply(rid, name, "error", error=f"{type(exc).__name__}: {exc}")
        except Exception as exc:  # the command edge: a handler's bug is answered and logged with its traceback
            log.exception("command %r (request %s) failed", name, rid)
            self._reply(rid, name, "error", error=f"{type(exc).__name__}: {exc}")
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
        self._emit(CommandEvent(state="replayed", command=name, request_id=rid, first_received=seen.received))
        self._emit(reply.model_copy(update={"replay": True}))

    def _bench(self, command: BenchCommand) -> None:
        rid, sha256 = command.request_id, self.bundle.manifest.model.sha256
        if command.model_sha256 is not None and command.model_sha256 != sha256:
            self._reject("bench", rid, f"model sha256 mismatch: the request is for {command.model_sha256}, the active "
                         f"bundle {self.bundle.manifest.name!r} runs {sha256}", state="refused")
            return
        threads = self.threads if command.threads is None else command.threads
        try:
            options = BenchOptions(runs=command.runs, duration_s=command.duration_s, warmup=command.warmup,
                                   threads=threads, profile=command.profile, keep_samples=command.samples)
        except BenchOptionsError as exc:  # named by the command's keys, as the command's own errors are
            self._reject("bench", rid, f"{type(exc).__name__}: {exc.render(key_names())}")
            return
        self._reply(rid, "bench", "running")
        self._emit(BenchEvent(state="started", request_id=rid))
        log.info("bench %s: inference pauses while the model is measured", rid)
        try:  # synchronous on purpose: inference waits, so the numbers are the model's alone
            record = bench_in_subprocess(self.bundle.root, options, timeout_s=self._bench_timeout_s(options),
                                         cancel=self.stop_event)
        except (AgentError, OSError) as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.warning("bench %s failed: %s", rid, error)
            self._emit(BenchEvent(state="failed", request_id=rid, error=error))
            self._reply(rid, "bench", "error", error=error)
            return
        log.info("bench %s: %s runs, p50 %s ms", rid, record.runs, record.latency_ms.p50)
        self._emit(BenchEvent(state="finished", request_id=rid, runs=record.runs, p50_ms=record.latency_ms.p50))
        self._reply(rid, "bench", "done", result=record.to_json())  # the envelope says which device

    def _bench_timeout_s(self, options: BenchOptions) -> float:
        """How long the bench child may take: its expected run, estimated generously, plus a margin."""
        infer = self.times.samples.get("infer")
        per_run_s = 4.0 * float(np.percentile(np.asarray(infer), 90)) / 1e3 if infer else 1.0
        if options.duration_s is not None:
            timed_s = options.duration_s
        elif options.runs is not None:
            timed_s = options.runs * per_run_s
        else:
            timed_s = DEFAULT_DURATION_S
        warmup_s = options.max_warmup_s if options.warmup is None else options.warmup * per_run_s
        profile_s = (PROFILE_RUNS + 3) * per_run_s if options.profile else 0.0
        return timed_s + warmup_s + profile_s + BENCH_TIMEOUT_MARGIN_S

    def _refuse_waiting_commands(self, reason: str) -> None:
        while True:
            try:
                name, payload, _ = self.publisher.commands.get_nowait()
            except queue.Empty:
                return
            self._reject(name, request_id_of(payload), reason, state="refused")

    # -- the loop ---------------------------------------------------------------------
    def _prepare(self, image: np.ndarray) -> tuple[np.ndarray, FrameTransform, float] | PreprocessError:
        """Preprocess in the source's thread, overlapping inference on the previous frame."""
        start = time.perf_counter_ns()
        manifest = self.bundle.manifest
        try:
            tensor, transform = preprocess(image, manifest.preprocess)  # type: ignore[arg-type]
        except PreprocessError as exc:  # a bad frame is reported and skipped, never fatal
            return exc
        tensor = quantize(tensor, manifest.inputs[0])  # int8 I/O (NPU targets): scale and zero point from the manifest
        return tensor, transform, (time.perf_counter_ns() - start) / 1e6

    def process(self, source: SourceRunner) -> bool:
        frame = source.frames.get(timeout=0.05)
        if frame is None:
            return False
        manifest = self.bundle.manifest
        prepared = frame.prepared if frame.prepared is not None else self._prepare(frame.image)
        if isinstance(prepared, PreprocessError):
            self._emit(FrameEvent(state="rejected", source=source.name, frame_id=frame.frame_id, reason=str(prepared)))
            return True
        tensor, transform, preprocess_ms = prepared
        t1 = time.perf_counter_ns()
        outputs = dequantize(self.runtime.run([tensor]), manifest.outputs)
        t2 = time.perf_counter_ns()
        result = decode(outputs, manifest.task, transform)
        t3 = time.perf_counter_ns()
        latency = {"capture_age": (time.monotonic_ns() - frame.captured_ns) / 1e6, "preprocess": preprocess_ms,
                   "infer": (t2 - t1) / 1e6, "postprocess": (t3 - t2) / 1e6}
        self.frames_done += 1
        for rule in self.rules:
            event = rule.update(result, source=source.name, frame_id=frame.frame_id)
            if event is not None:
                self._emit(event)
        if self.policy.should_publish(source.name, result):
            h, w = frame.image.shape[:2]
            self._emit(Result(  # validated: ~10-17 us more than the dict it replaced (benchmarks/protocol.py)
                frame=FrameRef(id=frame.frame_id, source=source.name, ts=frame.wall_time, size_wh=[w, h]),
                model=self.model_ref, result=Decoded.model_validate(result.to_json()),
                latency_ms={k: round(v, 3) for k, v in latency.items()},
            ))
            self.results_published += 1
            latency["publish"] = (time.perf_counter_ns() - t3) / 1e6
        for stage, ms in latency.items():
            self.times.add(stage, ms)
        return True

    def run(self, *, max_frames: int | None = None, flush_timeout_s: float = 10.0) -> int:
        """Run until stopped, until every source has ended, or after ``max_frames``; 0 then.

        Only finite sources (files, folders) end; a live one is retried forever. A source that
        stopped any other way raises :class:`SourceStoppedError`, so the process exits non-zero
        and systemd (``Restart=on-failure``) restarts it.
        """
        self._started = self._clock()
        self.stop_reason = "stop requested"
        manifest = self.bundle.manifest
        self.publisher.start()
        self.committer.start()
        if self.outbox.recovered_from is not None:
            self._emit(OutboxEvent(state="recovered", moved_aside=str(self.outbox.recovered_from)))
        self._emit(ModelEvent(state="loaded", name=manifest.name, version=manifest.version,
                              sha256=manifest.model.sha256, precision=manifest.precision))
        for source in self.sources:
            source.start()
        log.info(self._startup_line())
        self.systemd.ready(f"running {manifest.name} v{manifest.version} on {len(self.sources)} source(s)")
        next_metrics = self._clock() + self.config.publish.metrics_interval_s
        last_summary = self._totals()
        try:
            while not self.stop_event.is_set():
                self.systemd.watchdog()  # fed from the main loop only: a hung loop gets the agent restarted
                busy = False
                for source in self.sources:
                    busy |= self.process(source)
                busy |= self.take_commands()  # between frames; process() waits at most 50 ms per source
                if max_frames is not None and self.frames_done >= max_frames:
                    self.stop_reason = f"{max_frames} frames done (--max-frames)"
                    break
                stopped = [s for s in self.sources if s.state is SourceState.STOPPED]
                if any(not s.ended for s in stopped):  # a live source never stops by itself: its supervisor died
                    raise SourceStoppedError(f"source(s) {', '.join(s.name for s in stopped if not s.ended)} stopped "
                                             "without reaching the end of a finite stream; "
                                             "exiting non-zero to be restarted")
                if not busy and len(stopped) == len(self.sources):  # only finite sources that reached their end
                    self.stop_reason = "every source has ended"
                    log.info("every source has ended")
                    break
                self.publisher.check()  # refused credentials end the run with a clear error
                if self._clock() >= next_metrics:
                    self._metrics()
                    next_metrics = self._clock() + self.config.publish.metrics_interval_s
                if self._clock() - last_summary.at_s >= self.config.log.summary_interval_s:
                    last_summary = self._log_summary(last_summary)
        except BaseException as exc:
            self.stop_reason = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            self.systemd.stopping()
            for source in self.sources:
                source.stop(timeout=5.0)
            self._refuse_waiting_commands("the agent is stopping")
            self._metrics()
            self.committer.close()
            self._flush(flush_timeout_s)
            self.publisher.stop(timeout=5.0)
            self.systemd.close()
            left = self.outbox.depth()
            log.log(logging.WARNING if left else logging.INFO,
                    shutdown_line(reason=self.stop_reason, started_s=self._started, now=self._totals(),
                                  outbox_left=left))
        return 0

    # -- what the log says ------------------------------------------------------------------
    def _startup_line(self) -> str:
        manifest, mqtt = self.bundle.manifest, self.config.mqtt
        return startup_line(agent_version=__version__, bundle=manifest.name, version=manifest.version,
                            precision=manifest.precision, runtime=manifest.target.runtime,
                            providers=self.runtime.providers, threads=self.threads,
                            sources=[f"{s.name}={s.uri}" for s in self.sources],
                            broker=f"{mqtt.host}:{mqtt.port}{' (TLS)' if mqtt.tls else ''}")

    def _totals(self) -> Totals:
        return Totals(at_s=self._clock(), frames=self.frames_done, published=self.results_published)

    def _link(self) -> str:
        if self.publisher.connected:
            return "connected"
        return f"disconnected ({self.publisher.last_error})" if self.publisher.last_error else "connecting"

    def _log_summary(self, previous: Totals) -> Totals:
        now = self._totals()
        log.info(summary_line(previous=previous, now=now, latency_ms=self.times.summary().get("infer", {}),
                              outbox_depth=self.outbox.depth(), link=self._link()))
        return now

    def _flush(self, timeout_s: float) -> None:
        """Give the publisher up to ``timeout_s`` to connect and drain; what is left stays on disk."""
        deadline = time.monotonic() + timeout_s
        if self.outbox.depth() and not self.publisher.wait_connected(timeout=timeout_s):
            log.warning("no broker within %.0f s", timeout_s)
        while self.outbox.depth() > 0 and time.monotonic() < deadline and self.publisher.connected:
            time.sleep(0.05)

    def install_signal_handlers(self) -> None:
        def stop(signum: int, _frame: object) -> None:
            name = signal.Signals(signum).name
            log.info("%s: stopping", name)
            self.stop_reason = name
            self.stop_event.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
