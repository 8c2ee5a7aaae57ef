"""A folder of images as a source: each image is one frame, in file-name order.

The folder is listed on every open, so a looping source picks up files added meanwhile. A file
that cannot be decoded (half-written, not an image) is skipped with a warning rather than
ending the stream: a folder fed by another process often holds one such file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import ClassVar

import numpy as np

from device_agent.errors import SourceError
from device_agent.sources.opencv import as_bgr
from device_agent.sources.registry import SourceSpec, import_cv2, local_path, register_source

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


@register_source("image-folder")
class ImageFolderSource:
    """Every image file directly inside a folder (not recursive), sorted by name."""

    kind: ClassVar[str] = "image-folder"
    finite: ClassVar[bool] = True

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.path = local_path(spec.uri)
        self._files: list[Path] = []
        self._next = 0
        self.skipped = 0

    def open(self) -> None:
        where = f"image folder {self.spec.uri!r}"
        if not self.path.is_dir():
            raise SourceError(f"{where} does not exist or is not a folder; expected a folder of images")
        try:
            files = sorted(p for p in self.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        except OSError as exc:
            raise SourceError(f"{where} cannot be listed: {exc}") from exc
        if not files:
            kinds = ", ".join(sorted(IMAGE_SUFFIXES))
            raise SourceError(f"{where} holds no images; expected files ending in {kinds}")
        self._files, self._next = files, 0

    def read(self) -> np.ndarray | None:
        cv2 = import_cv2()
        while self._next < len(self._files):
            path = self._files[self._next]
            self._next += 1
            try:
                data = np.fromfile(path, dtype=np.uint8)
            except OSError as exc:
                log.warning("skipping %s: %s", path, exc)
                self.skipped += 1
                continue
            image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
            if image is None:
                log.warning("skipping %s: not a decodable image", path)
                self.skipped += 1
                continue
            return as_bgr(image, f"image {str(path)!r}")
        return None

    def close(self) -> None:
        self._files, self._next = [], 0
