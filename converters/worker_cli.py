"""The command line of the scripts that run inside the isolated LiteRT environment
(``litert_worker.py``, ``aeq_worker.py``; see :mod:`converters.litert_env`).

Standard library only, and imported by path (a worker's own folder is ``sys.path[0]``), never
through the ``converters`` package, whose dependencies that environment does not have.
:func:`serve` reads one JSON request from ``argv[1]``, prints the handler's JSON answer as
one line, and on an error prints the traceback and ``Type: message`` to stderr and exits 1
(the parent shows the last lines; see :func:`converters.litert_env.run_worker`).
"""

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any


def serve(handler: Callable[[dict[str, Any]], dict[str, Any]]) -> int:
    request = json.loads(sys.argv[1])
    try:
        print(json.dumps(handler(request)), flush=True)
    except Exception as exc:  # noqa: BLE001  (reported, never hidden: the parent shows the last lines)
        traceback.print_exc(file=sys.stderr)
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0
