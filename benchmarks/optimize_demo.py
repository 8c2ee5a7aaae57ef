"""The demo's optimize step (scripts/demo.sh), before and after the "do the work once" changes.

Runs the same ``optimize`` as the demo (EfficientNet-Lite0, x86-cpu, auto precision, 2-point
budget, 300 sample photos) with two source trees, each in its own process, taking turns
(``--rounds`` pairs, the order swapped every round), on the same inputs:

- ``before``: the code at ``--baseline`` (a commit, extracted with ``git archive``): bias
  correction measured again for every mixed-precision try, every weight re-quantized by ONNX
  Runtime on every re-quantization, probe sessions of the whole model;
- ``after``: this tree.

    python benchmarks/optimize_demo.py [--demo-out demo-out] [--rounds 1] [--baseline 2e0c070]

Writes benchmarks/results/optimize_demo.json and prints a table: the wall time of the optimize
call and of each group of steps, the winner and every candidate's agreement drop (which must
match between the two, up to the approximation ``correct_bias`` documents).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
BASELINE = "2e0c070"  # main before optimize reused its bias shifts and weight quantization
MODEL = "efficientnet-lite0"
GROUPS = {  # step description prefix -> group shown in the table
    "Quantizing to INT8": "int8",
    "Measuring the INT8 error": "ranking",
    "Quantizing with": "mixed",
    "Validating": "validate",
    "Timing": "timing",
}


def _child(tree: str, demo: Path, output: Path) -> None:
    """One optimize run, as the demo's, with the step times; prints one JSON object."""
    import contextlib

    import edgekit
    import edgekit.progress as progress
    from edgekit.optimize import optimize

    steps: list[dict[str, Any]] = []
    original = progress.Steps.step

    @contextlib.contextmanager
    def step(self: Any, description: str, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        with original(self, description, *args, **kwargs) as advance:
            yield advance
        steps.append({"step": description, "seconds": round(time.perf_counter() - start, 2)})

    progress.Steps.step = step  # type: ignore[method-assign]
    models = demo / "models"
    start = time.perf_counter()
    result = optimize(models / f"{MODEL}.onnx", target="x86-cpu", calib=demo / "data" / "images", max_drop=2,
                      preprocess=models / f"{MODEL}.json", labels=models / f"{MODEL}.labels.txt",
                      task="classification", output=output)
    seconds = time.perf_counter() - start
    report = result.report.to_json()
    print(json.dumps({
        "tree": tree, "edgekit": str(Path(edgekit.__file__).parent), "seconds": round(seconds, 2), "steps": steps,
        "winner": result.winner,
        "candidates": [{"name": c["name"], "drop": round(c["drop"], 3), "passed": c["passed"],
                        "passes": [{k: p.get(k) for k in ("name", "seconds", "measured", "reused", "kept",
                                                          "calibration")} for p in c["passes"]]}
                       for c in report["candidates"]],
    }))


def _demo_inputs(demo: Path) -> None:
    """What the demo's first two steps write (``edgekit samples``, ``edgekit zoo build``), unless there."""
    from edgekit.content import samples
    from edgekit.content.zoo import build_model

    if not (demo / "data" / "images").is_dir():
        samples.write_image_folder(demo / "data" / "images", count=300)
    if not (demo / "models" / f"{MODEL}.labels.txt").is_file():
        model = build_model(MODEL, demo / "models")
        (demo / "models" / f"{MODEL}.labels.txt").write_text("".join(f"{label}\n" for label in model.task.labels))


def _run(tree: Path, demo: Path, work: Path) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(tree), str(demo),
                           str(work / f"bundle-{time.monotonic_ns()}")],
                          env=env, cwd=tree, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"optimize with {tree} failed:\n{done.stderr[-4000:]}")
    run = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(run["edgekit"]).resolve() != (tree / "edgekit").resolve():
        raise SystemExit(f"the child imported edgekit from {run['edgekit']}, not {tree}")
    run["process_seconds"] = round(time.perf_counter() - start, 2)
    run["groups"] = {group: round(sum(s["seconds"] for s in run["steps"] if s["step"].startswith(prefix)), 2)
                     for prefix, group in GROUPS.items()}
    return run


def _table(runs: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="edgekit optimize, the demo's command (seconds)")
    for column in ["variant", "round", "optimize", *GROUPS.values(), "winner", "drops (points)"]:
        table.add_column(column)
    for run in runs:
        drops = " ".join(f"{c['name'].removeprefix('int8-mixed-') if 'mixed' in c['name'] else c['name']}:"
                         f"{c['drop']:.2f}" for c in run["candidates"] if c["name"] != "fp32")
        table.add_row(run["variant"], str(run["round"]), f"{run['seconds']:.1f}",
                      *[f"{run['groups'][g]:.1f}" for g in GROUPS.values()], run["winner"], drops)
    Console(width=200).print(table)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        _child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--demo-out", type=Path, help="the demo's output folder (data/, models/); default: built "
                        "in a temporary folder as the demo does")
    parser.add_argument("--rounds", type=int, default=1, help="before/after pairs, order swapped each round")
    parser.add_argument("--baseline", default=BASELINE, help=f"the 'before' commit (default {BASELINE})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="optimize-demo-") as tmp:
        work = Path(tmp)
        before = work / "before"
        before.mkdir()
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
        demo = args.demo_out.resolve() if args.demo_out else work / "demo-out"
        _demo_inputs(demo)
        runs = []
        for index in range(args.rounds):
            order = [("before", before), ("after", ROOT)]
            for variant, tree in order if index % 2 == 0 else order[::-1]:
                run = _run(tree, demo, work)
                runs.append({"variant": variant, "round": index + 1, **run})
                print(f"round {index + 1} {variant}: {run['seconds']:.1f} s", file=sys.stderr, flush=True)
    median = {v: statistics.median(r["seconds"] for r in runs if r["variant"] == v) for v in ("before", "after")}
    out = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": sys.version.split()[0],
                       "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
           "baseline": args.baseline, "rounds": args.rounds, "speedup": round(median["before"] / median["after"], 2),
           "median_seconds": median, "runs": runs}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "optimize_demo.json").write_text(json.dumps(out, indent=2) + "\n")
    _table(runs)
    print(f"optimize step: {median['before']:.1f} s before, {median['after']:.1f} s after: "
          f"{out['speedup']:.2f}x faster")


if __name__ == "__main__":
    main()
