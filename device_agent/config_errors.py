"""One way to turn a pydantic ValidationError into a message a person can act on."""

from __future__ import annotations

from pydantic import ValidationError


def explain(exc: ValidationError) -> str:
    """``key 'a.b': what was wrong (got value)``, one per problem, joined with '; '."""
    return "; ".join(
        f"key '{'.'.join(str(p) for p in err['loc'])}': {err['msg']} (got {err.get('input')!r:.60})"
        for err in exc.errors()
    )
