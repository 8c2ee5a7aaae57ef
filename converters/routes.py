"""Routes between model formats, found from the registered edges, never hard-coded.

A pass whose key reads ``SRC->DST`` (``torch->onnx``, ``onnx->torch``, ``torch->tflite``)
is an edge between two formats; passes without an arrow (``onnx-int8-static``) transform a
model within its format. :func:`find_route` takes the shortest chain of edges from one
format to another, so a new converter module makes new routes without touching the callers:
``onnx -> tflite`` is ``onnx->torch`` then ``torch->tflite`` today.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from converters.base import PASSES
from converters.errors import ConversionError


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str

    @property
    def key(self) -> str:
        """The pass that converts along this edge."""
        return f"{self.src}->{self.dst}"


def edges() -> list[Edge]:
    """Every registered format edge, in registration order."""
    import converters  # noqa: F401  (importing the package registers every pass)

    found = []
    for key in PASSES:
        src, arrow, dst = key.partition("->")
        if arrow and src and dst:
            found.append(Edge(src, dst))
    return found


def find_route(src: str, dst: str) -> list[Edge]:
    """The shortest chain of edges from format ``src`` to ``dst`` (empty when they are the same)."""
    if src == dst:
        return []
    graph: dict[str, list[Edge]] = {}
    for edge in edges():
        graph.setdefault(edge.src, []).append(edge)
    previous: dict[str, Edge] = {}
    queue = deque([src])
    while queue:
        here = queue.popleft()
        for edge in graph.get(here, []):
            if edge.dst in previous or edge.dst == src:
                continue
            previous[edge.dst] = edge
            if edge.dst == dst:
                route = [edge]
                while route[0].src != src:
                    route.insert(0, previous[route[0].src])
                return route
            queue.append(edge.dst)
    formats = sorted({e.src for e in edges()} | {e.dst for e in edges()})
    reachable = sorted(previous) or ["nothing"]
    raise ConversionError(f"no conversion route from {src!r} to {dst!r}; from {src!r} we reach "
                          f"{', '.join(reachable)} (known formats: {', '.join(formats)})")
