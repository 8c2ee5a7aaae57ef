"""Seq accounting, the same for every backend: runs of seqs merged and subtracted.

A backend finds the holes between the seqs it received (one window query, ``LAG`` over the seq
table) and the runs gap events announced lost; what is in a hole and not announced is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from edgekit.fleet.hub.store.records import BootSpan, SeqAccount, SeqRange


def merge(ranges: Iterable[SeqRange]) -> tuple[SeqRange, ...]:
    """Sorted, overlapping or touching runs joined: ``[(5, 6), (1, 3), (4, 4)]`` -> ``((1, 6),)``."""
    merged: list[SeqRange] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return tuple(merged)


def subtract(ranges: Iterable[SeqRange], removed: Iterable[SeqRange]) -> tuple[SeqRange, ...]:
    """The seqs of ``ranges`` not in ``removed``, as merged runs."""
    out: list[SeqRange] = []
    cuts = merge(removed)
    for first, last in merge(ranges):
        start = first
        for cut_first, cut_last in cuts:
            if cut_last < start or cut_first > last:
                continue
            if cut_first > start:
                out.append((start, cut_first - 1))
            start = cut_last + 1
            if start > last:
                break
        if start <= last:
            out.append((start, last))
    return tuple(out)


def account(device: str, boots: Sequence[BootSpan], holes: Iterable[SeqRange],
            lost: Iterable[SeqRange]) -> SeqAccount:
    """One device's account from its boots (received spans), the holes between received seqs and lost runs."""
    lost_runs = merge(lost)
    return SeqAccount(device=device, boots=tuple(sorted(boots, key=lambda b: b.first_seq)),
                      received=sum(b.received for b in boots), lost=lost_runs, missing=subtract(holes, lost_runs))
