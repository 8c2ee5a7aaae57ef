"""Real sample photos, and BatchNorm recalibration on them for randomly initialised models.

A randomly initialised network fed real images has badly scaled activations, which makes
quantization and agreement metrics meaningless. Running it in train mode over a few real
photos (preprocessed exactly as the device will) resets every BatchNorm's running
statistics to what real inputs produce, so the eval-mode model is well scaled.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from device_agent.bundle.manifest import PreprocessSpec
from device_agent.pipeline.preprocess import preprocess
from edgekit.errors import MissingDependencyError


def base_photos_rgb() -> dict[str, np.ndarray]:
    """The photos that ship with scikit-image and scikit-learn, as HxWx3 uint8 RGB."""
    try:
        import skimage.data
        from sklearn.datasets import load_sample_images
    except ImportError as exc:
        raise MissingDependencyError(
            module=exc.name or "skimage", extra="dev", purpose="building zoo models on sample photos"
        ) from exc
    photos = {n: getattr(skimage.data, n)() for n in ("astronaut", "coffee", "chelsea", "rocket", "cat")}
    for i, image in enumerate(load_sample_images().images):
        photos[f"sklearn_{i}"] = image
    return {name: np.ascontiguousarray(image[..., :3].astype(np.uint8)) for name, image in photos.items()}


def sample_frames_bgr(*, count: int = 32, seed: int = 0) -> list[np.ndarray]:
    """``count`` BGR frames: every base photo, then random crops and flips of them."""
    rng = np.random.default_rng(seed)
    bases = [image[..., ::-1] for image in base_photos_rgb().values()]
    frames = [np.ascontiguousarray(b) for b in bases]
    while len(frames) < count:
        image = bases[int(rng.integers(len(bases)))]
        h, w = image.shape[:2]
        ch, cw = int(h * rng.uniform(0.5, 1.0)), int(w * rng.uniform(0.5, 1.0))
        y0, x0 = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = image[y0 : y0 + ch, x0 : x0 + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        frames.append(np.ascontiguousarray(crop))
    return frames[:count]


def sample_batch(spec: PreprocessSpec, *, count: int = 32, seed: int = 0) -> np.ndarray:
    """``count`` sample frames preprocessed by ``spec``, stacked into one float32 batch."""
    return np.concatenate([preprocess(f, spec)[0] for f in sample_frames_bgr(count=count, seed=seed)])


def recalibrate_batchnorm(module: Any, batch: np.ndarray, *, batch_size: int = 8) -> None:
    """Reset every BatchNorm's running statistics to their average over ``batch``; leave eval mode."""
    import torch

    norms = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average: every batch counts the same
    module.train()
    with torch.no_grad():
        for start in range(0, len(batch), batch_size):
            module(torch.from_numpy(batch[start : start + batch_size]))
    module.eval()
