"""Which candidate ships: the finalists within the budget, the failure when none can, the winner and why.

Kept apart from the pipeline so the rule a person reads in the report (``reason``) is in one place:
the fastest wins only when its speed can be told apart from the others' (its 95 % interval,
:mod:`edgekit.optimize.timing`); among those it cannot, the simplest (:data:`SIMPLICITY`).
"""

from __future__ import annotations

from edgekit.errors import OptimizeFailed
from edgekit.optimize.candidates.onnx import Candidate
from edgekit.optimize.timing import Timing


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


SIMPLICITY: tuple[str, ...] = ("fp32", "fp16", "int8", "int8-dynamic", "int8-mixed")
"""The order in which candidates that cannot be told apart on speed are preferred, simplest first.

fp32 is the original and loses nothing; fp16 changes only the number format; static ``int8`` is
one fixed integer graph, its scales calibrated and validated on the user's data; ``int8-dynamic``
recomputes activation scales on every run and keeps float between its layers (more runtime work,
behaviour that depends on each input's range); ``int8-mixed`` adds float islands and the
quantize/dequantize pairs at their edges, and the fewer float layers the simpler. Within a
precision the unpruned model comes before the pruned or sparse one (one change fewer), then the
smaller file."""


def simplicity(candidate: Candidate) -> tuple[int, int, int, int]:
    """The sort key of :data:`SIMPLICITY`: lower is simpler."""
    derived = sum(tag in candidate.name for tag in ("-pruned", "-sparse"))
    rank = SIMPLICITY.index(candidate.precision) if candidate.precision in SIMPLICITY else len(SIMPLICITY)
    return derived, rank, len(candidate.excluded_nodes), candidate.path.stat().st_size


def _pick(pool: list[Candidate], timing: Timing) -> tuple[Candidate, list[Candidate]]:
    """The simplest of the candidates whose speedup interval overlaps the fastest's, and those candidates."""
    speed = timing.speedups
    fastest = max(pool, key=lambda c: speed[c.name].value)
    tied = [c for c in pool if speed[c.name].overlaps(speed[fastest.name])]
    return min(tied, key=simplicity), tied


def _speed(timing: Timing, name: str) -> str:
    """``1.42x (1.38-1.47)``, or ``not resolved`` when the machine was too busy for a ratio to mean anything."""
    return "not resolved" if timing.contended else timing.speedups[name].text()


def _ties(pick: Candidate, tied: list[Candidate], timing: Timing) -> str:
    others = [c for c in tied if c is not pick]
    if not others or timing.contended:
        return ""
    names = ", ".join(f"{c.name} {_speed(timing, c.name)}" for c in others)
    return f"; cannot be told apart from {names} on this machine, so the simpler {pick.name} is kept"


def _busy(timing: Timing) -> str:
    if not timing.contended:
        return ""
    return (f"; speed not resolved: other programs used {timing.contention_pct:.0f}% of the CPUs while timing "
            "(re-run on a quiet machine or measure the bundle with 'edgekit benchmark')")


def choose(finalists: list[Candidate], tried: list[Candidate], max_drop: float,
           precision: str, timing: Timing) -> tuple[Candidate, str]:
    """The winner among the timed ``finalists``, and why, for a person.

    The fastest by median latency, unless its speedup interval (``timing``) overlaps others':
    then the simplest of those (:data:`SIMPLICITY`). Under ``auto`` only a candidate measurably
    faster than fp32 (its whole interval above 1.0) may replace it: when none is, fp32 wins.
    With a precision asked for, the simplest of that precision's indistinguishable fastest."""
    timed = [c for c in finalists if c.name in timing.speedups]
    if precision != "auto":
        family = [c for c in timed if c.precision.split("-")[0] == precision]
        pick, tied = _pick(family, timing)
        speed = timing.speedups[pick.name]
        slower = ""
        if not timing.contended and speed.slower:
            slower = " (slower than fp32 on this machine; --precision auto would keep fp32)"
        elif not timing.contended and not speed.faster and pick.name != "fp32":
            slower = " (not measurably faster than fp32 on this machine)"
        versus = "" if timing.contended else f"; {speed.text()} vs fp32{slower}"
        return pick, f"{pick.name} was asked for and met the budget{versus}{_ties(pick, tied, timing)}{_busy(timing)}"
    passing = [c for c in timed if c.passed(max_drop)]
    faster = [c for c in passing if timing.speedups[c.name].faster]
    pick, tied = _pick(faster or passing, timing)  # none faster: fp32, the simplest (or, blocked, the rest's)
    failed = [c.name for c in tried if not c.passed(max_drop)]
    missed = f"; missed the budget: {', '.join(failed)}" if failed else ""
    if pick.name == "fp32":
        others = [f"{c.name} {_speed(timing, c.name)}" for c in passing if c is not pick]
        why = f"no candidate within budget ran measurably faster than fp32 ({', '.join(others) or 'none passed'})"
        return pick, why + missed + _busy(timing)
    drop = f"{pick.agreement.metric} drop {pick.agreement.drop:.2f}"
    head = (f"fastest by median within the {max_drop}-point budget, {drop}" if timing.contended else
            f"fastest candidate within the {max_drop}-point budget: {timing.speedups[pick.name].text()} faster "
            f"than fp32, {drop}")
    return pick, f"{head}{_ties(pick, tied, timing)}{missed}{_busy(timing)}"
