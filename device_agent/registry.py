"""One registry type for every "key -> backend" table: sources, decoders, runtimes, passes, ...

Why one: eight hand-written dicts each had their own decorator, duplicate check and "unknown
key" message, and drifted apart (some refused a duplicate, some silently replaced it; some
listed the known keys, some did not). :class:`Registry` is a read-only mapping whose only
writer is :meth:`Registry.register`, so every table refuses duplicates and names its known
keys the same way. Registration stays explicit: a module registers its entries when it is
imported, and the package that owns the registry imports those modules (no entry points,
no import scanning).

    DECODERS: Registry[Decoder] = Registry("decoder")

    @DECODERS.register("yolov8")           # decorator form
    def decode_yolov8(...): ...

    DECODERS.register("raw", decode_raw)   # explicit form
    DECODERS["nope"]                       # UnknownKeyError: unknown decoder 'nope'; known decoders: raw, yolov8
    DECODERS.lookup("nope", DecodeError)   # the same message, as the package's own error
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TypeVar, cast, overload

from device_agent.errors import DuplicateKeyError, UnknownKeyError

T = TypeVar("T")


class _Unset(enum.Enum):
    UNSET = enum.auto()


_UNSET = _Unset.UNSET


class Registry(Mapping[str, T]):
    """Entries of one kind by name, in registration order; added only through :meth:`register`.

    ``kind`` names an entry in messages ("decoder", "source kind"); ``plural`` is its plural
    (``kind + "s"`` unless given).
    """

    def __init__(self, kind: str, *, plural: str | None = None) -> None:
        self.kind = kind
        self.plural = plural if plural is not None else f"{kind}s"
        self._entries: dict[str, T] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, item: T) -> T: ...

    def register(self, name: str, item: T | _Unset = _UNSET) -> T | Callable[[T], T]:
        """``register(name, item)`` adds ``item`` and returns it; ``register(name)`` is the decorator form.

        A different entry under a taken name is a :class:`DuplicateKeyError`; registering the
        very same object again (a module imported twice under two names) is a no-op.
        """
        if isinstance(item, _Unset):
            return lambda decorated: self._add(name, decorated)
        return self._add(name, item)

    def _add(self, name: str, item: T) -> T:
        if not name:
            raise ValueError(f"a {self.kind} is registered under a non-empty name")
        if name in self._entries and self._entries[name] is not item:
            raise DuplicateKeyError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = item
        return item

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._entries)

    def unknown(self, key: object) -> str:
        """The message for a missing ``key``: the kind, the key and the known names."""
        return f"unknown {self.kind} {key!r}; known {self.plural}: {', '.join(self.names()) or 'none'}"

    def lookup(self, key: str, error: Callable[[str], Exception]) -> T:
        """The entry under ``key``, or ``error(message)`` raised with :meth:`unknown`'s message."""
        try:
            return self._entries[key]
        except KeyError:
            raise error(self.unknown(key)) from None

    @contextmanager
    def override(self, name: str, item: T) -> Iterator[T]:
        """For tests: ``item`` stands under ``name`` inside the ``with`` block, then the old entry returns."""
        had, old = name in self._entries, self._entries.get(name)
        self._entries[name] = item
        try:
            yield item
        finally:
            if had:
                self._entries[name] = cast(T, old)
            else:
                del self._entries[name]

    def __getitem__(self, key: str) -> T:
        try:
            return self._entries[key]
        except KeyError:
            known = tuple(self.names())
            raise UnknownKeyError(self.unknown(key), kind=self.kind, key=key, known=known) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)!r})"
