from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from edgekit.optimize.sensitivity import candidate_chains, exclusion_steps, float_chains, refine
from edgekit.optimize.validation import SNR_CAP_DB, snr_db
from tests.support.tinymodels import tiny_classifier


def test_chains_follow_single_consumer_activations(tmp_path: Path) -> None:
    model = onnx.load(str(tiny_classifier(tmp_path / "tiny.onnx")))
    # conv1 -> relu -> conv2 is one chain; GlobalAveragePool ends it, so the Gemm stands alone.
    assert float_chains(model) == [("conv1", "conv2"), ("fc",)]
    assert float_chains(model, max_len=1) == [("conv1",), ("conv2",), ("fc",)]


def test_search_steps_and_bisection() -> None:
    assert exclusion_steps(24) == [1, 2, 4, 8, 12]
    assert exclusion_steps(1) == [1]
    assert refine(4, 8) == 6 and refine(6, 8) == 7 and refine(7, 8) is None


def test_candidate_chains_keep_the_earliest_and_the_last() -> None:
    chains = [(f"c{i}",) for i in range(40)]
    picked = candidate_chains(chains, limit=6)
    assert picked == [("c0",), ("c1",), ("c2",), ("c3",), ("c38",), ("c39",)]


def test_snr_of_a_known_noise_level() -> None:
    ref = [[np.ones(1000, np.float32)]]
    noisy = [[np.ones(1000, np.float32) * 1.1]]  # noise power 0.01 of signal power 1: 20 dB
    assert abs(snr_db(ref, noisy) - 20.0) < 1e-4
    assert snr_db(ref, ref) == SNR_CAP_DB
