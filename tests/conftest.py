"""Shared fixtures: real photographs, a video made from them, and models built by the project's code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgekit.content import samples


@pytest.fixture(scope="session")
def photo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """160 JPEGs cut from the real photographs that scikit-image, scikit-learn and matplotlib ship."""
    folder = tmp_path_factory.mktemp("photos")
    samples.write_image_folder(folder, count=160, seed=1)
    return folder


@pytest.fixture(scope="session")
def video_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return samples.write_video(tmp_path_factory.mktemp("video") / "street.mp4", seconds=6, fps=10)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """Where zoo models are built; kept between runs (EDGEKIT_CACHE or ~/.cache/edgekit)."""
    root = Path(os.environ.get("EDGEKIT_CACHE", Path.home() / ".cache" / "edgekit")) / "test-models"
    root.mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture(scope="session")
def zoo(model_dir: Path):  # type: ignore[no-untyped-def]
    """``zoo(name)`` builds (or reuses) a zoo model."""
    from edgekit.content.zoo import build_model

    return lambda name: build_model(name, model_dir)


# A real Mosquitto on a free port for every test that asks for `broker` / `broker_factory`.
from tests.support.mqtt_broker import broker, broker_factory  # noqa: E402,F401
