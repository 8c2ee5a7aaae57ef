"""The agent's side of drift detection: the monitor built from the bundle and the config, fed per
frame, its changes as ``drift`` events and its windows as the heartbeat's ``drift`` histograms."""

from __future__ import annotations

import logging

import numpy as np

from device_agent.bundle.verify import Bundle
from device_agent.drift.monitor import DriftMonitor, DriftSettings
from device_agent.drift.signals import input_signals, luma_of_bgr, output_signals
from device_agent.pipeline.decoders.types import DecodeResult
from device_agent.protocol.events import DriftEvent
from device_agent.protocol.messages import DriftHistogram
from device_agent.service.config import DriftConfig

log = logging.getLogger("edgekit.agent")


class DriftWatch:
    """Drift over the agent's frames (all sources together), against the bundle's baseline."""

    def __init__(self, monitor: DriftMonitor) -> None:
        self.monitor = monitor

    @classmethod
    def create(cls, bundle: Bundle, config: DriftConfig) -> DriftWatch | None:
        """The watch, or None: turned off in the config, or a bundle without a baseline (said once in the log)."""
        if not config.enabled:
            return None
        if bundle.drift is None:
            log.info("drift detection off: the bundle carries no drift baseline (drift.json)")
            return None
        settings = DriftSettings(window=config.window, min_frames=config.min_frames, warn=config.warn,
                                 alert=config.alert, p_value=config.p_value)
        return cls(DriftMonitor(bundle.drift, settings))

    def inputs(self, resized_bgr: np.ndarray) -> tuple[float, ...] | None:
        """The input statistics of one resized frame (in the source's thread), if the baseline has them."""
        return input_signals(luma_of_bgr(resized_bgr)) if self.monitor.wants_input else None

    def update(self, inputs: tuple[float, ...] | None, result: DecodeResult) -> list[DriftEvent]:
        """Add one frame; a ``drift`` event per signal whose state changed."""
        return [DriftEvent(signal=c.signal, state=c.state, previous=c.previous, score=c.score,
                           threshold=c.threshold, window=c.window, p_value=c.p_value)
                for c in self.monitor.update(inputs, output_signals(result))]

    def histograms(self) -> dict[str, DriftHistogram]:
        return {name: DriftHistogram(counts=v.counts, edges=v.edges, labels=v.labels, score=v.score, state=v.state,
                                     baseline_counts=v.reference)
                for name, v in self.monitor.view().items()}
