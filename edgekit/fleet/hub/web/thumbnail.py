"""An event's thumbnail (what the camera saw when an alert fired) as an <img> with its boxes drawn over it.

The agent's thumbnails (opt-in) add to an event an optional ``thumbnail`` field::

    {"media_type": "image/jpeg", "width": W, "height": H, "data": "<base64>",
     "boxes": [{"label": str, "score": float, "box": [x1, y1, x2, y2]}]}

with boxes in thumbnail pixels. It is read from the stored payload as plain data, checked
here (a data URL of an allowed image type, base64 only, sane sizes), and anything else is not
shown: the page must not break on a field a device got wrong.
"""

from __future__ import annotations

import re
from typing import Any

from edgekit.fleet.hub.web.html import esc

MEDIA_TYPES = frozenset({"image/jpeg", "image/png", "image/webp"})
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
MAX_SIDE = 4096


def _side(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SIDE else None


def _box(entry: Any, index: int) -> str:
    if not isinstance(entry, dict):
        return ""
    box = entry.get("box")
    if not (isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box)):
        return ""
    x1, y1, x2, y2 = (float(v) for v in box)
    score = entry.get("score")
    caption = str(entry.get("label", "")) + (f" {score:.2f}" if isinstance(score, (int, float)) else "")
    colour = ("#ff3b30", "#ffcc00", "#34c759", "#0a84ff")[index % 4]
    return (f'<rect x="{x1:.1f}" y="{y1:.1f}" width="{max(0.0, x2 - x1):.1f}" height="{max(0.0, y2 - y1):.1f}" '
            f'fill="none" stroke="{colour}" stroke-width="2"/>'
            f'<text x="{x1 + 2:.1f}" y="{max(10.0, y1 - 3):.1f}" font-size="11" fill="{colour}" '
            f'stroke="#000" stroke-width="0.3">{esc(caption)}</text>')


def render(payload: dict[str, Any]) -> str:
    """The event's thumbnail with its boxes, or "" when it has none (or one that cannot be shown)."""
    thumb = payload.get("thumbnail")
    if not isinstance(thumb, dict):
        return ""
    media, data = thumb.get("media_type"), thumb.get("data")
    width, height = _side(thumb.get("width")), _side(thumb.get("height"))
    if media not in MEDIA_TYPES or not isinstance(data, str) or not _BASE64.fullmatch(data) or not width \
            or not height:
        return ""
    boxes = thumb.get("boxes") if isinstance(thumb.get("boxes"), list) else []
    overlay = "".join(_box(entry, i) for i, entry in enumerate(boxes or []))
    return (f'<span class="thumb" style="width:{width}px;height:{height}px">'
            f'<img src="data:{esc(media)};base64,{data}" width="{width}" height="{height}" '
            f'alt="thumbnail from {esc(payload.get("device"))} seq {esc(payload.get("seq"))}">'
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}">{overlay}</svg></span>')
