"""The drift baseline: fixed bins and reference histograms per signal, shipped in the bundle.

It is its own file, ``drift.json``, listed (sha256 and size) in the manifest's ``files`` like
every other file of the bundle, rather than a new manifest key: an agent that predates drift
refuses any manifest key it does not know (the manifest is strict), but verifies and then
ignores a listed file. A bundle without the file simply has no drift detection.

Numeric signals are binned by the deciles of the calibration data (values it holds, not
interpolated between them; interior edges ``e``; bin
``i`` holds ``e[i-1] < x <= e[i]``, the first and last are open): every bin then holds about a
tenth of the reference, the usual layout for PSI. Equal deciles (a fraction that is mostly 0)
are merged. Class labels rarer than :data:`MIN_CLASS_SHARE` in the calibration data are pooled
into ``other`` (so are labels never seen there): a chi-square test needs expected counts of a
few at least, and a 1000-class model would otherwise have hundreds of near-empty classes.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Final, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from device_agent.errors import BundleError
from device_agent.service.config_errors import explain

DRIFT_FILE: Final = "drift.json"
SCHEMA: Final = "edgekit.drift/1"
QUANTILES = tuple(i / 10 for i in range(1, 10))
MIN_CLASS_SHARE = 0.01
OTHER = "other"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NumericBaseline(_Strict):
    """One numeric signal: interior bin edges and the calibration data's counts per bin."""

    edges: list[float] = Field(min_length=1, description="interior edges, increasing; bins are (-inf, e0], ...")
    counts: list[int] = Field(description="calibration frames per bin (len(edges) + 1)")

    @model_validator(mode="after")
    def _shape(self) -> NumericBaseline:
        if len(self.counts) != len(self.edges) + 1:
            raise ValueError(f"{len(self.edges)} edges make {len(self.edges) + 1} bins, got {len(self.counts)} counts")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError("edges must be strictly increasing")
        return self

    def bin_of(self, value: float) -> int:
        return int(np.searchsorted(self.edges, value, side="left"))


class ClassBaseline(_Strict):
    """The class mix: labels (``other`` last) and the calibration data's count of each."""

    labels: list[str] = Field(min_length=2, description="labels kept, then 'other' for every rarer or unseen one")
    counts: list[int]

    @model_validator(mode="after")
    def _shape(self) -> ClassBaseline:
        if len(self.counts) != len(self.labels) or self.labels[-1] != OTHER:
            raise ValueError("one count per label, and the last label is 'other'")
        return self


class DriftBaseline(_Strict):
    """Everything drift detection compares a device's frames with."""

    schema_: Literal["edgekit.drift/1"] = Field(alias="schema", default=SCHEMA)
    frames: int = Field(ge=1, description="calibration frames the histograms count")
    signals: dict[str, NumericBaseline] = Field(description="per numeric signal (signals.py names them)")
    classes: ClassBaseline | None = Field(default=None, description="the class mix; absent for raw decoders")

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2, sort_keys=True) + "\n"


def parse_baseline(text: str | bytes, *, where: str = DRIFT_FILE) -> DriftBaseline:
    """Parse and validate ``drift.json``; :class:`BundleError` (``drift-baseline``) naming what is wrong."""
    try:
        return DriftBaseline.model_validate_json(text)
    except ValidationError as exc:
        raise BundleError("drift-baseline", f"{where}: {explain(exc)}") from exc


def numeric_baseline(values: Sequence[float]) -> NumericBaseline:
    """Decile edges of ``values`` and their counts."""
    x = np.asarray(values, dtype=np.float64)
    edges = np.unique(np.quantile(x, QUANTILES, method="inverted_cdf"))  # values seen, not interpolated
    counts = np.bincount(np.searchsorted(edges, x, side="left"), minlength=edges.size + 1)
    return NumericBaseline(edges=[float(e) for e in edges], counts=[int(c) for c in counts])


def class_baseline(per_frame: Iterable[Sequence[str]]) -> ClassBaseline | None:
    """The class mix of the labels seen per frame; None when no frame had one."""
    seen = Counter(label for labels in per_frame for label in labels)
    total = sum(seen.values())
    if total == 0:
        return None
    kept = sorted(label for label, n in seen.items() if n / total >= MIN_CLASS_SHARE and label != OTHER)
    other = total - sum(seen[label] for label in kept)
    return ClassBaseline(labels=[*kept, OTHER], counts=[seen[label] for label in kept] + [other])


def build_baseline(numeric: Mapping[str, Sequence[float]], classes: Iterable[Sequence[str]] | None,
                   *, frames: int) -> DriftBaseline:
    """The baseline of ``frames`` calibration frames: each numeric signal's values, the labels per frame."""
    return DriftBaseline(frames=frames, signals={name: numeric_baseline(v) for name, v in numeric.items() if len(v)},
                         classes=None if classes is None else class_baseline(classes))
