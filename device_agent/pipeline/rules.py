"""Alert rules: a label above a score, optionally inside a polygon zone, N frames in a row."""

from __future__ import annotations

from dataclasses import dataclass, field

from device_agent.pipeline.decoders import DecodeResult
from device_agent.pipeline.decoders.types import Detection
from device_agent.protocol.events import AlertEvent
from device_agent.service.config import RuleConfig


def point_in_polygon(x: float, y: float, polygon: list[tuple[float, float]]) -> bool:
    """Even-odd ray casting; points on an edge count as inside for horizontal edges only."""
    inside = False
    j = len(polygon) - 1
    for i, (xi, yi) in enumerate(polygon):
        xj, yj = polygon[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


@dataclass
class Rule:
    """One configured rule and its run of consecutive matching frames.

    ``matched`` holds the detections that matched in the last frame :meth:`update` saw (what a
    thumbnail of the alert draws)."""

    config: RuleConfig
    streak: int = 0
    active: bool = False
    matched: tuple[Detection, ...] = ()
    _fired: bool = field(default=False, repr=False)

    def matches(self, result: DecodeResult) -> tuple[bool, float]:
        best, _ = self._matching(result)
        return best > 0.0, best

    def _matching(self, result: DecodeResult) -> tuple[float, tuple[Detection, ...]]:
        """The best matching score (0: none) and the matching detections."""
        best = 0.0
        for c in result.classifications:
            if c.label == self.config.label and c.score >= self.config.min_score:
                best = max(best, c.score)
        found = []
        for d in result.detections:
            if d.label != self.config.label or d.score < self.config.min_score:
                continue
            if self.config.zone is not None:
                x0, y0, x1, y1 = d.box_xyxy
                if not point_in_polygon((x0 + x1) / 2, (y0 + y1) / 2, self.config.zone):
                    continue
            best = max(best, d.score)
            found.append(d)
        return best, tuple(found)

    def update(self, result: DecodeResult, *, source: str, frame_id: int) -> AlertEvent | None:
        """The event to raise for this frame of ``source``, if any.

        Raised once when the streak reaches N, cleared once when it ends."""
        score, self.matched = self._matching(result)
        hit = score > 0.0
        self.streak = self.streak + 1 if hit else 0
        if hit and self.streak >= self.config.consecutive and not self.active:
            self.active = True
            return AlertEvent(rule=self.config.name, label=self.config.label, score=score, frames=self.streak,
                              state="raised", source=source, frame_id=frame_id)
        if not hit and self.active:
            self.active = False
            return AlertEvent(rule=self.config.name, label=self.config.label, state="cleared", source=source,
                              frame_id=frame_id)
        return None
