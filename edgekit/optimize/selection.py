"""Which candidate ships: the finalists within the budget, the failure when none can, the winner and why.

Kept apart from the pipeline so the rule a person reads in the report (``reason``) is in one place.
"""

from __future__ import annotations

from edgekit.errors import OptimizeFailed
from edgekit.optimize.candidates.onnx import Candidate


def finalists(candidates: list[Candidate], max_drop: float, precision: str) -> list[Candidate]:
    """The candidates that may win: every one within budget (fp32, the reference, always is),
    narrowed to the asked precision's family when one was asked for."""
    passing = [c for c in candidates if c.passed(max_drop)]
    if precision == "auto":
        return passing
    return [c for c in passing if c.name == "fp32" or c.precision.split("-")[0] == precision]


def require_passing(tried: list[Candidate], precision: str, max_drop: float) -> None:
    """Fail before timing anything when no candidate (of the asked precision) can ship."""
    if precision == "auto":
        if not any(c.passed(max_drop) for c in tried):
            why = "; ".join(f"{c.name}: {c.blocker or f'drop {c.agreement.drop:.2f}'}" for c in tried)
            raise OptimizeFailed(f"no candidate can ship within the budget of {max_drop} points: {why}",
                                 candidates=[c.summary(max_drop, None) for c in tried])
        return
    family = [c for c in tried if c.precision.split("-")[0] == precision]
    if any(c.passed(max_drop) for c in family):
        return
    blocked = [f"{c.name}: {c.blocker}" for c in family if c.blocker]
    if blocked:
        raise OptimizeFailed(f"no {precision} candidate can ship: {'; '.join(blocked)}",
                             candidates=[c.summary(max_drop, None) for c in tried])
    best = max(family, key=lambda c: c.agreement.optimized)
    raise OptimizeFailed(
        f"no {precision} candidate met the accuracy budget of {max_drop} points: the best, {best.name}, has "
        f"{best.agreement.metric} {best.agreement.optimized:.2f} vs {best.agreement.reference:.2f} "
        f"(drop {best.agreement.drop:.2f}); tried {', '.join(c.name for c in family)}. "
        "Raise --max-drop, give more representative --calib data, or use --precision auto",
        candidates=[c.summary(max_drop, None) for c in tried],
    )


def choose(finalists: list[Candidate], tried: list[Candidate], max_drop: float,
           precision: str) -> tuple[Candidate, str]:
    """The winner among the timed ``finalists``, and why, for a person: the asked precision's fastest,
    or under ``auto`` the fastest within the budget (fp32 when nothing beats it)."""
    reference = next(c for c in tried if c.name == "fp32")
    assert reference.latency is not None
    if precision != "auto":
        family = [c for c in finalists if c.precision.split("-")[0] == precision]
        pick = min(family, key=lambda c: c.latency.p50_ms if c.latency else float("inf"))
        speed = reference.latency.p50_ms / pick.latency.p50_ms if pick.latency else float("nan")
        slower = " (slower than fp32 on this machine; --precision auto would keep fp32)" if speed < 1 else ""
        return pick, f"{pick.name} was asked for and met the budget; {speed:.2f}x vs fp32{slower}"
    passing = [c for c in finalists if c.passed(max_drop) and c.latency is not None]
    best = min(passing, key=lambda c: c.latency.p50_ms if c.latency else float("inf"))
    failed = [c.name for c in tried if not c.passed(max_drop)]
    missed = f"; missed the budget: {', '.join(failed)}" if failed else ""
    if best.name == "fp32":
        others = [f"{c.name} {reference.latency.p50_ms / c.latency.p50_ms:.2f}x"
                  for c in passing if c is not best and c.latency]
        why = f"no candidate within budget ran faster than fp32 ({', '.join(others) or 'none passed'})"
        return best, why + missed
    assert best.latency is not None
    speedup = reference.latency.p50_ms / best.latency.p50_ms
    return best, (f"fastest candidate within the {max_drop}-point budget: {speedup:.2f}x "
                  f"faster than fp32, {best.agreement.metric} drop {best.agreement.drop:.2f}{missed}")
