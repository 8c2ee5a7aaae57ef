"""One model's benchmark in a fresh Python process.

Each model gets a process of its own so that its peak memory is its own (``ru_maxrss`` only
grows), its load time is not helped by another model's warm allocator, and a model that
crashes the runtime does not take the caller down. The parent reads phase names from the
child's stderr (``phase: NAME``) for its progress display and the result from a JSON file.

    python -m device_agent.bench.worker MODEL OPTIONS_JSON OUT_JSON
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from device_agent.bench.options import BenchOptions
from device_agent.bench.record import BenchRecord
from device_agent.bench.runner import benchmark_model
from device_agent.errors import AgentError, BenchFailed, BenchInputError
from device_agent.service.config_errors import explain

_ERRORS: dict[str, type[AgentError]] = {"BenchInputError": BenchInputError, "BenchOptionsError": BenchInputError}


def main(argv: list[str]) -> int:
    model, options_json, out = argv
    try:
        options = BenchOptions.model_validate(json.loads(options_json))
        record: dict[str, Any] = benchmark_model(
            model, options, on_phase=lambda name: print(f"phase: {name}", file=sys.stderr, flush=True)).to_json()
    except AgentError as exc:  # reported to the parent, which raises it again with the same type
        record = {"error": {"type": type(exc).__name__, "message": str(exc)}}
    Path(out).write_text(json.dumps(record), encoding="utf-8")
    return 0


def bench_in_subprocess(
    model: Path | str,
    options: BenchOptions,
    *,
    timeout_s: float | None = None,
    on_phase: Callable[[str], None] | None = None,
    cancel: threading.Event | None = None,
    python: str = sys.executable,
) -> BenchRecord:
    """Run :func:`benchmark_model` on ``model`` in a child process and return its record.

    Setting ``cancel`` (the agent's stop event) kills the child within a tenth of a second."""
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [python, "-m", "device_agent.bench.worker", str(model), options.model_dump_json(), str(out)]
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        tail: deque[str] = deque(maxlen=20)

        def read_stderr() -> None:
            assert proc.stderr is not None
            for line in proc.stderr:
                if line.startswith("phase: "):
                    if on_phase is not None:
                        on_phase(line[len("phase: "):].strip())
                else:
                    tail.append(line.rstrip())

        reader = threading.Thread(target=read_stderr, name="bench-stderr", daemon=True)
        reader.start()
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while True:
                try:
                    proc.wait(timeout=0.1)
                    break
                except subprocess.TimeoutExpired:
                    pass
                if cancel is not None and cancel.is_set():
                    raise BenchFailed(f"benchmark of {str(model)!r} cancelled: the agent is stopping")
                if deadline is not None and time.monotonic() > deadline:
                    raise BenchFailed(f"benchmark of {str(model)!r} did not finish within {timeout_s:.0f} s")
        finally:  # also on Ctrl-C: never leave a benchmark process behind
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            reader.join(timeout=5.0)
            if proc.stderr is not None:
                proc.stderr.close()
        if proc.returncode != 0 or not out.is_file():
            detail = "\n".join(list(tail)[-8:]) or "no output"
            raise BenchFailed(f"benchmark process for {str(model)!r} exited with status {proc.returncode}:\n{detail}")
        return _read_result(out, model)


def _read_result(out: Path, model: Path | str) -> BenchRecord:
    """The child's record, or the error it reported raised again with the same type."""
    record: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    if "error" in record:
        kind, message = record["error"]["type"], record["error"]["message"]
        if kind in _ERRORS:
            raise _ERRORS[kind](message)
        raise BenchFailed(f"{kind}: {message}")
    try:
        return BenchRecord.model_validate(record)
    except ValidationError as exc:  # the child runs this very code, so this is a bug, named as one
        raise BenchFailed(f"benchmark process for {str(model)!r} wrote a record that does not parse: "
                          f"{explain(exc)}") from None


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
