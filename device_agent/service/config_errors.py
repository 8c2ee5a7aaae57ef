"""One way to turn a pydantic ValidationError into a message a person can act on."""

from __future__ import annotations

import reprlib

from pydantic import ValidationError

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 3


def explain(exc: ValidationError) -> str:
    """``key 'a.b': what was wrong (got value)``, one per problem, joined with '; '."""
    return "; ".join(
        f"key '{'.'.join(str(p) for p in err['loc'])}': {err['msg']} (got {brief(err.get('input'))})"
        for err in exc.errors()
    )


def brief(value: object) -> str:
    """The value's ``repr``, at most 60 characters.

    Cut before it is built (``reprlib``), not after: the value comes from the file being
    refused, and a full ``repr`` of a huge or deeply nested one is slow or raises."""
    try:
        text = _REPR.repr(value)
    except (ValueError, RecursionError) as exc:  # an int too long to print, say
        text = f"<{type(value).__name__}: {exc}>"
    return text[:60]
