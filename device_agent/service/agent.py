"""The agent's main loop: newest frame -> preprocess -> infer -> decode -> outbox -> MQTT.

Capture runs in each source's own thread (newest frame wins, so a slow model never builds
a backlog); this loop takes the newest frame of each source in turn. Every result is
committed to the durable outbox before MQTT sees it; the publisher deletes it on PUBACK.

Every message is built through the contract's models (:mod:`device_agent.protocol`) and
queued as such; the committer dumps it to JSON in its own thread.

Commands are taken between frames, in this thread, by :mod:`device_agent.service.handlers`
(validation, request_id dedup, the ``bench`` handler).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from device_agent import __version__
from device_agent.errors import PreprocessError, SourceStoppedError
from device_agent.pipeline.decoders import decode
from device_agent.pipeline.policy import PublishPolicy
from device_agent.pipeline.preprocess import FrameTransform, dequantize, quantize, resize_frame, to_tensor
from device_agent.pipeline.rules import Rule
from device_agent.protocol.base import Body
from device_agent.protocol.events import CameraEvent, FrameEvent, ModelEvent, OutboxEvent
from device_agent.protocol.messages import LinkStats, Metrics, Reply, SourceStats, StageLatency
from device_agent.protocol.results import Decoded, FrameRef, ModelRef, Result
from device_agent.protocol.topics import Topics
from device_agent.service.config import AgentConfig, mqtt_password
from device_agent.service.drift_watch import DriftWatch
from device_agent.service.handlers import BenchHandler, CommandDesk
from device_agent.service.health import CpuMeter, rss_mb, temperature_c
from device_agent.service.logs import Totals, shutdown_line, startup_line, summary_line
from device_agent.service.preflight import preflight
from device_agent.service.systemd import Notifier
from device_agent.service.thumbnails import Thumbnails
from device_agent.sources.runner import SourceRunner
from device_agent.sources.types import SourceState, StateChange
from device_agent.transport.committer import Committer
from device_agent.transport.outbox import Outbox
from device_agent.transport.publisher import Identity, MqttSettings, Publisher

log = logging.getLogger("edgekit.agent")

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


Prepared = tuple[np.ndarray, FrameTransform, float, tuple[float, ...] | None]
"""A frame made ready in its source's thread: input tensor, transform, preprocess ms, drift input statistics."""


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
            status_body=Identity(agent=__version__, model=self.model_ref, measured_fps=manifest.measured_fps),
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
        self.thumbnails = Thumbnails(config.thumbnails) if config.thumbnails.enabled else None
        self.drift = DriftWatch.create(self.bundle, config.drift)  # None: off, or no baseline in the bundle
        self.times = StageTimes()
        self.stop_event = threading.Event()
        self.systemd = Notifier()  # READY, WATCHDOG and STOPPING to systemd when run as a Type=notify service
        self.frames_done = 0
        self.results_published = 0
        self._clock = clock
        self.stop_reason = "not started"
        self._cpu = CpuMeter()
        self.commands = CommandDesk(self.publisher.commands, self.outbox, emit=self._emit,
                                    dedup_window_s=config.commands.dedup_window_s)
        self._handlers = self.commands.handlers  # one per name in COMMANDS
        self._handlers["bench"] = BenchHandler(self.commands, bundle=self.bundle, threads=self.threads,
                                               recent_infer_ms=lambda: self.times.samples.get("infer", ()),
                                               cancel=self.stop_event)

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
        age = self.outbox.oldest_age_s()
        self._emit(Metrics(
            fps=round(self.frames_done / elapsed, 3), frames=self.frames_done, dropped_frames=dropped,
            results=self.results_published, suppressed=self.policy.suppressed,
            latency_ms={stage: StageLatency(**q) for stage, q in self.times.summary().items()},
            outbox_depth=self.outbox.depth(), outbox_oldest_age_s=None if age is None else round(age, 3),
            cpu_percent=round(self._cpu.percent(), 1),
            rss_mb=round(rss_mb(), 1), temperature_c=temperature_c(),
            sources={s.name: SourceStats(**{"state": s.state.name.lower(), **s.stats()}) for s in self.sources},
            mqtt=LinkStats(**self.publisher.stats()),
            drift=self.drift.histograms() if self.drift else None,
        ))

    def take_commands(self) -> bool:
        """Run every command that is waiting (never blocks when none is); True if there was one."""
        return self.commands.take()

    # -- the loop ---------------------------------------------------------------------
    def _prepare(self, image: np.ndarray) -> Prepared | PreprocessError:
        """Preprocess in the source's thread, overlapping inference on the previous frame; the drift
        input statistics too (on the resized frame, as optimize measured its calibration data)."""
        start = time.perf_counter_ns()
        manifest = self.bundle.manifest
        try:
            resized, transform = resize_frame(image, manifest.preprocess)  # type: ignore[arg-type]
            tensor = to_tensor(resized, manifest.preprocess)  # type: ignore[arg-type]
        except PreprocessError as exc:  # a bad frame is reported and skipped, never fatal
            return exc
        inputs = self.drift.inputs(resized) if self.drift else None
        tensor = quantize(tensor, manifest.inputs[0])  # int8 I/O (NPU targets): scale and zero point from the manifest
        return tensor, transform, (time.perf_counter_ns() - start) / 1e6, inputs

    def process(self, source: SourceRunner) -> bool:
        frame = source.frames.get(timeout=0.05)
        if frame is None:
            return False
        manifest = self.bundle.manifest
        prepared = frame.prepared if frame.prepared is not None else self._prepare(frame.image)
        if isinstance(prepared, PreprocessError):
            self._emit(FrameEvent(state="rejected", source=source.name, frame_id=frame.frame_id, reason=str(prepared)))
            return True
        tensor, transform, preprocess_ms, drift_inputs = prepared
        t1 = time.perf_counter_ns()
        outputs = dequantize(self.runtime.run([tensor]), manifest.outputs)
        t2 = time.perf_counter_ns()
        result = decode(outputs, manifest.task, transform)
        t3 = time.perf_counter_ns()
        latency = {"capture_age": (time.monotonic_ns() - frame.captured_ns) / 1e6, "preprocess": preprocess_ms,
                   "infer": (t2 - t1) / 1e6, "postprocess": (t3 - t2) / 1e6}
        self.frames_done += 1
        for drift in self.drift.update(drift_inputs, result) if self.drift else ():
            self._emit(drift)
        for rule in self.rules:
            event = rule.update(result, source=source.name, frame_id=frame.frame_id)
            if event is not None and self.thumbnails is not None:
                event = self.thumbnails.attach(event, frame.image, rule.matched)  # in line: ~0.5 ms, rare
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
        self._start()
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
            self._shut_down(flush_timeout_s)
        return 0

    def _start(self) -> None:
        """Start the publisher, the committer and the sources; say what runs, to MQTT, the log and systemd."""
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

    def _shut_down(self, flush_timeout_s: float) -> None:
        """Stop the sources, refuse waiting commands, flush what the broker will take; the rest stays on disk."""
        self.systemd.stopping()
        for source in self.sources:
            source.stop(timeout=5.0)
        self.commands.refuse_waiting("the agent is stopping")
        self._metrics()
        self.committer.close()
        self._flush(flush_timeout_s)
        self.publisher.stop(timeout=5.0)
        self.systemd.close()
        left = self.outbox.depth()
        log.log(logging.WARNING if left else logging.INFO,
                shutdown_line(reason=self.stop_reason, started_s=self._started, now=self._totals(), outbox_left=left))

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
