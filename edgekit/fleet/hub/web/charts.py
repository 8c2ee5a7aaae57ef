"""Line charts as inline SVG, drawn by Python: they show with JavaScript off, offline, and in a screenshot.

One chart is one or more named series of ``(ts, value)`` over a shared time axis; a missing
value (None) breaks the line rather than drawing it at zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from edgekit.fleet.hub.web.html import esc

Point = tuple[float, float | None]
COLOURS = ("#2563eb", "#dc2626", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#4b5563")
MAX_SERIES = len(COLOURS)


def _clock(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%H:%M:%S")


def _runs(points: Sequence[Point]) -> list[list[tuple[float, float]]]:
    runs: list[list[tuple[float, float]]] = [[]]
    for ts, value in points:
        if value is None:
            runs.append([])
        else:
            runs[-1].append((ts, value))
    return [run for run in runs if run]


def line_chart(title: str, series: Mapping[str, Sequence[Point]], *, unit: str = "",
               width: int = 560, height: int = 200) -> str:
    """An SVG chart of ``series`` (name -> points, oldest first); at most :data:`MAX_SERIES` lines."""
    shown = dict(list(series.items())[:MAX_SERIES])
    values = [v for pts in shown.values() for _, v in pts if v is not None]
    times = [t for pts in shown.values() for t, _ in pts]
    left, right, top, bottom = 48, 12, 24, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    parts = [f'<svg class="chart" role="img" aria-label="{esc(title)}" xmlns="http://www.w3.org/2000/svg" '
             f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">',
             f'<text x="{left}" y="16" font-size="13" font-weight="600">{esc(title)}</text>']
    if not values:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" fill="#6b7280">no data yet'
                     "</text></svg>")
        return "".join(parts)
    t0, t1 = min(times), max(times)
    high = max(values) if max(values) > 0 else 1.0
    low = min(0.0, *values)
    span_t, span_v = (t1 - t0) or 1.0, (high - low) or 1.0

    def xy(ts: float, value: float) -> tuple[float, float]:
        return left + (ts - t0) / span_t * plot_w, top + plot_h - (value - low) / span_v * plot_h

    parts += [f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#9ca3af"/>',
              f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" stroke="#9ca3af"/>',
              f'<text x="{left - 4}" y="{top + 4}" font-size="11" text-anchor="end">{esc(f"{high:.3g}")}</text>',
              f'<text x="{left - 4}" y="{top + plot_h}" font-size="11" text-anchor="end">{esc(f"{low:.3g}")}</text>',
              f'<text x="{left}" y="{top + plot_h + 14}" font-size="11">{esc(_clock(t0))}</text>',
              f'<text x="{left + plot_w}" y="{top + plot_h + 14}" font-size="11" text-anchor="end">'
              f'{esc(_clock(t1))} UTC</text>']
    if unit:
        parts.append(f'<text x="{width - right}" y="16" font-size="11" text-anchor="end" fill="#6b7280">'
                     f"{esc(unit)}</text>")
    legend_x = left
    for colour, (name, points) in zip(COLOURS, shown.items()):
        for run in _runs(points):
            if len(run) == 1:
                x, y = xy(*run[0])
                parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{colour}"/>')
            else:
                drawn = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(t, v) for t, v in run))
                parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.8" points="{drawn}"/>')
        parts.append(f'<rect x="{legend_x}" y="{height - 12}" width="10" height="3" fill="{colour}"/>'
                     f'<text x="{legend_x + 14}" y="{height - 8}" font-size="11">{esc(name)}</text>')
        legend_x += 20 + 7 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def labels_of(payload: Mapping[str, Any]) -> list[str]:
    """What one result found: every detection's label, or a classifier's top-1 label."""
    decoded = payload.get("result")
    if not isinstance(decoded, dict):
        return []
    detections = decoded.get("detections") or []
    if detections:
        return [str(d.get("label")) for d in detections if isinstance(d, dict)]
    top = [c for c in decoded.get("classifications") or [] if isinstance(c, dict)]
    return [str(max(top, key=lambda c: c.get("score") or 0).get("label"))] if top else []


def per_class(results: Iterable[tuple[float, Mapping[str, Any]]], *, start: float, end: float,
              buckets: int = 30) -> dict[str, list[Point]]:
    """Detections per class in ``buckets`` equal time buckets over ``[start, end]``, the most frequent first."""
    width = max((end - start) / buckets, 1e-9)
    counts: dict[str, list[float]] = {}
    for ts, payload in results:
        index = min(buckets - 1, max(0, int((ts - start) / width)))
        for label in labels_of(payload):
            counts.setdefault(label, [0.0] * buckets)[index] += 1
    ranked = sorted(counts.items(), key=lambda item: -sum(item[1]))
    return {label: [(start + (i + 0.5) * width, n) for i, n in enumerate(row)] for label, row in ranked}
