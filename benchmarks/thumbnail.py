"""What an alert thumbnail costs the agent's inference thread: a 640x480 frame to a 320 px JPEG under the byte cap.

- ``scene``: frames of the sample video (``edgekit.content.samples``); the first quality fits.
- ``noise``: uniform noise, the worst case: it needs quality steps (and, under a smaller cap, scaling).
- ``noise, 8000 B cap``: noise under a cap that forces the scale-down too.

Each row is :meth:`~device_agent.service.thumbnails.Thumbnails.make` with the defaults of
``[thumbnails]`` (quality 80, 24000 bytes): resize, encode(s), base64 and the protocol record,
with 5 boxes to scale. Rounds of a batch each, timed with ``time.perf_counter_ns``; the minimum
of the rounds (the cost itself) and the median (what the shared machine adds). Writes
``benchmarks/results/thumbnail.json`` and prints a table. Run: ``python benchmarks/thumbnail.py``.
"""

from __future__ import annotations

import base64
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from device_agent.pipeline.decoders.types import Detection
from device_agent.pipeline.thumbnail import encode_jpeg
from device_agent.service.config import ThumbnailsConfig
from device_agent.service.thumbnails import Thumbnails
from edgekit.content import samples

ROUNDS = 15
BATCH = 20
BOXES = [Detection(class_id=0, label="person", score=0.5 + i / 20, box_xyxy=(40.0 * i, 30.0 * i, 40.0 * i + 120,
                                                                               30.0 * i + 200)) for i in range(5)]


def _row(frames: list[np.ndarray], config: ThumbnailsConfig) -> dict[str, float]:
    thumbs = Thumbnails(config)
    for i in range(BATCH):  # warm up
        thumbs.make(frames[i % len(frames)], BOXES)
    rounds = []
    for _ in range(ROUNDS):
        start = time.perf_counter_ns()
        for i in range(BATCH):
            thumbs.make(frames[i % len(frames)], BOXES)
        rounds.append((time.perf_counter_ns() - start) / BATCH / 1e6)
    jpeg = encode_jpeg(frames[0], max_side=config.max_side, max_bytes=config.max_bytes, quality=config.quality)
    assert jpeg is not None
    made = thumbs.make(frames[0], BOXES)
    assert made is not None and len(base64.b64decode(made.data)) <= config.max_bytes
    return {"min_ms": round(min(rounds), 3), "median_ms": round(statistics.median(rounds), 3),
            "bytes": len(jpeg.data), "width": jpeg.width, "height": jpeg.height, "quality": jpeg.quality,
            "encodes": jpeg.attempts}


def main() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for _ in range(4)]
    default = ThumbnailsConfig(enabled=True)
    rows = {
        "scene 640x480": _row(samples.scene_frames(seconds=3), default),
        "noise 640x480": _row(noise, default),
        "noise 640x480, 8000 B cap": _row(noise, default.model_copy(update={"max_bytes": 8000})),
    }
    out = Path(__file__).parent / "results" / "thumbnail.json"
    result = {"benchmark": "thumbnail", "rounds": ROUNDS, "config": default.model_dump(), "rows": rows}
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"{'frame':28} {'min ms':>7} {'median ms':>10} {'bytes':>6} {'size':>8} {'q':>3} {'encodes':>7}")
    for name, row in rows.items():
        print(f"{name:28} {row['min_ms']:7.2f} {row['median_ms']:10.2f} {row['bytes']:6d} "
              f"{row['width']:4d}x{row['height']:<4d}{row['quality']:3d} {row['encodes']:7d}")
    return result


if __name__ == "__main__":
    main()
