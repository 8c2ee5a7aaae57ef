"""How deeply a parsed document nests, measured without recursion.

Config and manifest files come from outside; a crafted one nested thousands of levels deep
would exhaust the stack in validation or in ``repr``. Both loaders bound the depth right
after parsing (the parsers themselves raise ``RecursionError``, which the loaders name).
"""

from __future__ import annotations


def nesting_depth(value: object, limit: int) -> int:
    """Depth of nested dicts and lists in ``value`` (a scalar is 0), stopping once past ``limit``."""
    deepest = 0
    stack: list[tuple[object, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: list[object] = list(item.values())
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest
