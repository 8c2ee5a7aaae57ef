"""The external-data file names an ONNX model refers to, read without the ``onnx`` package.

An ONNX tensor may keep its bytes in another file, named by the ``location`` entry of its
``external_data`` list; onnxruntime opens that path relative to the model's folder when it
loads the model. A bundle must not be able to make the device read a file outside itself
(``../../etc/shadow``, ``/dev/zero``), so the bundle check needs those names *before* the
model is loaded.

The device has onnxruntime but not the ``onnx`` package (it would pull protobuf's Python
code and ~20 MB onto a Raspberry Pi for one check), and onnxruntime's own refusal of such a
path varies by version and gives no name to match on. So this module walks the protobuf
wire format itself: only the few message fields that can hold a tensor are followed
(graph initializers, node attributes, subgraphs, functions, training graphs), everything
else is skipped by its length. The walk is iterative, so a crafted model cannot exhaust the
stack, and it stops at the first malformed byte: a file that is not a well-formed model is
left to the runtime, whose load error the bundle check reports as ``model-load``.
"""

from __future__ import annotations

# message kind -> {field number: kind of the sub-message it holds}; field numbers from onnx.proto
_CHILDREN: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "tensor": {13: "entry"},
    "sparse": {1: "tensor", 2: "tensor"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node"},
    "entry": {},
}
_MAX_DEPTH = 64
"""Nesting deeper than any real model (subgraphs of subgraphs); deeper input is not a model we read."""


class _Malformed(Exception):
    """Internal: the bytes are not protobuf; the walk gives up quietly (see the module docstring)."""


def _varint(data: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise _Malformed
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: memoryview, start: int, end: int) -> list[tuple[int, int, int]]:
    """``(field number, start, end)`` of each length-delimited field in ``data[start:end]``."""
    out = []
    pos = start
    while pos < end:
        key, pos = _varint(data, pos, end)
        number, wire = key >> 3, key & 7
        if wire == 0:
            _, pos = _varint(data, pos, end)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            length, pos = _varint(data, pos, end)
            if pos + length > end:
                raise _Malformed
            out.append((number, pos, pos + length))
            pos += length
        else:  # groups (3, 4) are not used by onnx.proto; anything else is not protobuf
            raise _Malformed
        if pos > end:
            raise _Malformed
    return out


def _entry(data: memoryview, start: int, end: int) -> tuple[str, str]:
    key = value = ""
    for number, s, e in _fields(data, start, end):
        text = bytes(data[s:e]).decode("utf-8", errors="replace")
        if number == 1:
            key = text
        elif number == 2:
            value = text
    return key, value


def external_data_locations(model: bytes) -> list[str] | None:
    """Every distinct ``location`` an external-data tensor of ``model`` names, sorted.

    ``None`` when the bytes are not a well-formed ONNX protobuf (the runtime will refuse it).
    """
    data = memoryview(model)
    locations: set[str] = set()
    stack: list[tuple[str, int, int, int]] = [("model", 0, len(data), 0)]
    try:
        while stack:
            kind, start, end, depth = stack.pop()
            if depth > _MAX_DEPTH:
                return None
            children = _CHILDREN[kind]
            for number, s, e in _fields(data, start, end):
                child = children.get(number)
                if child == "entry":
                    key, value = _entry(data, s, e)
                    if key == "location":
                        locations.add(value)
                elif child is not None:
                    stack.append((child, s, e, depth + 1))
    except _Malformed:
        return None
    return sorted(locations)
