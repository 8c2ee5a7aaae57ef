"""The generic registry every "key -> backend" table is built on (device_agent.registry)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from device_agent.errors import DecodeError, DuplicateKeyError, UnknownKeyError
from device_agent.registry import Registry


def _double(x: int) -> int:
    return 2 * x


def _triple(x: int) -> int:
    return 3 * x


def _filled() -> Registry[Callable[[int], int]]:
    registry: Registry[Callable[[int], int]] = Registry("scaler")
    registry.register("double", _double)

    @registry.register("triple")
    def triple(x: int) -> int:
        return _triple(x)

    return registry


def test_explicit_and_decorator_registration_give_a_read_only_mapping() -> None:
    registry = _filled()
    assert registry["double"] is _double and registry["triple"](2) == 6
    assert list(registry) == ["double", "triple"]  # registration order
    assert len(registry) == 2 and "double" in registry and "half" not in registry and 3 not in registry
    assert registry.names() == ["double", "triple"]
    assert registry.get("half") is None and set(registry.keys()) == {"double", "triple"}
    assert not hasattr(registry, "__setitem__")


def test_register_returns_the_item_so_the_decorated_name_stays_usable() -> None:
    registry: Registry[Callable[[int], int]] = Registry("scaler")
    assert registry.register("double", _double) is _double
    decorated = registry.register("triple")(_triple)
    assert decorated is _triple


def test_a_second_entry_under_a_taken_name_is_refused() -> None:
    registry = _filled()
    with pytest.raises(DuplicateKeyError, match=r"^scaler 'double' is registered twice$"):
        registry.register("double", _triple)
    with pytest.raises(ValueError, match="registered twice"):  # a ValueError, as the old tables raised
        registry.register("double")(_triple)
    assert registry["double"] is _double
    registry.register("double", _double)  # the same object again (a module imported twice): a no-op
    assert len(registry) == 2


def test_an_empty_name_is_refused() -> None:
    with pytest.raises(ValueError, match="non-empty name"):
        Registry[int]("number").register("", 1)


def test_an_unknown_key_names_the_kind_the_key_and_the_known_keys() -> None:
    registry = _filled()
    with pytest.raises(KeyError) as caught:
        registry["half"]
    error = caught.value
    assert isinstance(error, UnknownKeyError)
    assert str(error) == "unknown scaler 'half'; known scalers: double, triple"
    assert (error.kind, error.key, error.known) == ("scaler", "half", ("double", "triple"))


def test_lookup_raises_the_callers_own_error_with_the_same_message() -> None:
    registry = _filled()
    assert registry.lookup("double", DecodeError) is _double
    with pytest.raises(DecodeError, match=r"^unknown scaler 'half'; known scalers: double, triple$"):
        registry.lookup("half", DecodeError)


def test_plural_and_an_empty_registry() -> None:
    registry: Registry[int] = Registry("pass", plural="passes")
    assert registry.unknown("x") == "unknown pass 'x'; known passes: none"
    assert len(registry) == 0 and list(registry) == []


def test_override_stands_in_for_a_test_and_restores_the_entry() -> None:
    registry = _filled()
    with registry.override("double", _triple):
        assert registry["double"] is _triple
    assert registry["double"] is _double
    with registry.override("half", _double):
        assert registry["half"] is _double
    assert "half" not in registry
    with pytest.raises(RuntimeError), registry.override("double", _triple):
        raise RuntimeError("restored even when the block fails")
    assert registry["double"] is _double


def test_every_table_of_the_code_base_is_a_registry() -> None:
    from converters import PASSES
    from device_agent.bench.cost import COUNTERS
    from device_agent.pipeline.decoders import DECODERS
    from device_agent.protocol import COMMANDS
    from device_agent.runtimes import RUNTIMES
    from device_agent.sources import SOURCES
    from edgekit.content.zoo import ZOO

    tables = [SOURCES, DECODERS, RUNTIMES, PASSES, COUNTERS, COMMANDS, ZOO]  # and OPS (test_onnx_torch: torch)
    assert all(isinstance(t, Registry) and len(t) > 0 for t in tables)
    assert [t.kind for t in tables] == ["source kind", "decoder", "runtime", "pass", "cost counter", "command",
                                        "zoo model"]
