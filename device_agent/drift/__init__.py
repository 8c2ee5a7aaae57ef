"""Drift detection on the device, numpy only: do the frames still look like the calibration data?

- :mod:`.signals`: the per-frame statistics (input luma statistics, top-1 confidence,
  detections per frame, class mix).
- :mod:`.baseline`: bins and reference histograms, computed by ``edgekit optimize`` and
  shipped as ``drift.json`` in the bundle.
- :mod:`.stats`: PSI and the chi-square test (formulas there).
- :mod:`.monitor`: rolling windows, thresholds, hysteresis; what the agent publishes.
"""

from __future__ import annotations

from device_agent.drift.baseline import DRIFT_FILE, DriftBaseline, build_baseline, parse_baseline
from device_agent.drift.monitor import DriftChange, DriftMonitor, DriftSettings
from device_agent.drift.signals import INPUT_SIGNALS, input_signals, luma_of_bgr, luma_of_tensor, output_signals
from device_agent.drift.stats import chi_square, chi_square_p, psi

__all__ = ["DRIFT_FILE", "INPUT_SIGNALS", "DriftBaseline", "DriftChange", "DriftMonitor", "DriftSettings",
           "build_baseline", "chi_square", "chi_square_p", "input_signals", "luma_of_bgr", "luma_of_tensor",
           "output_signals", "parse_baseline", "psi"]
