"""Property-based fuzzing of what a device reads from outside: the config file and the bundle manifest.

The property is the same everywhere: whatever the bytes, the loader returns a value or raises
its own named error (:class:`ConfigError`, :class:`BundleError`, both :class:`AgentError`);
anything else (RecursionError, UnicodeDecodeError, OSError, ValueError...) is a crash that would
show a traceback to a person who has no way to act on it.

About 7,100 cases in all by default (about 40 s on one idle core). Set
``EDGEKIT_FUZZ_SCALE`` to run more (``10`` before a release) or fewer (``0.1`` for a quick look).
Crashers found while writing this are kept as ``@example``s.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from device_agent.bundle.manifest import Manifest, parse_manifest
from device_agent.bundle.onnx_external import external_data_locations
from device_agent.bundle.verify import load_bundle
from device_agent.errors import BundleError, ConfigError
from device_agent.service.config import load_config
from tests.device_agent.test_bundle_matrix import good_bundle  # noqa: F401  (the module's real bundle, built once)

SCALE = float(os.environ.get("EDGEKIT_FUZZ_SCALE", "1"))


def fuzz(examples: int) -> Any:  # a settings decorator
    return settings(max_examples=max(1, int(examples * SCALE)), deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Files a fuzzed config can point at: good, empty and non-UTF-8 password files, a CA, a folder."""
    root = tmp_path_factory.mktemp("fuzz")
    (root / "pw-good").write_text("s3cret\n")
    (root / "pw-empty").write_bytes(b"")
    (root / "pw-blank").write_bytes(b"\n\n  \n")
    (root / "pw-latin1").write_bytes(b"caf\xe9\n")
    (root / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    (root / "folder").mkdir()
    return root


# -- the config loader ------------------------------------------------------------------------------
def _toml_key(key: str) -> str:
    return json.dumps(key)  # a quoted key; JSON's escapes are TOML's, except a lone surrogate (refused)


class Raw(str):
    """Text emitted as is: an integer too long for ``str(int)`` to write (Python refuses past 4300 digits)."""


def _toml_value(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"


def to_toml(doc: dict[str, Any]) -> str:
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in doc.items())


TABLES = {
    "": ["device_id", "bundle", "sources", "mqtt", "outbox", "publish", "rules", "threads"],
    "mqtt": ["host", "port", "client_id", "username", "password", "password_file", "keepalive_s", "protocol",
             "topic_root", "tls"],
    "tls": ["ca", "cert", "key"],
    "sources": ["uri", "name", "loop", "fps", "read_timeout_s", "stall_after_s"],
    "outbox": ["path", "max_rows", "max_age_s"],
    "publish": ["policy", "max_per_second", "metrics_interval_s"],
    "rules": ["name", "label", "min_score", "zone", "consecutive"],
}
KEYS = st.sampled_from(sorted({k for keys in TABLES.values() for k in keys})) | st.text(max_size=6)
SPECIAL = ["", "0", "/dev/video99", "rtsp://cam:99999/x", "http://[::1", "x" * 5000, "a/" * 3000, "a\0b",
           "\ud800", "5", "3.1.1", "every", "pw-good", "pw-empty", "pw-blank", "pw-latin1", "ca.pem", "folder",
           "missing-file", "../../../../etc/passwd", "~", "file://", " ! "]
BIG_INTS = st.integers(4300, 5000).map(lambda digits: Raw("9" * digits))
SCALARS = st.one_of(st.booleans(), st.integers(), BIG_INTS, st.floats(),
                    st.text(max_size=20), st.sampled_from(SPECIAL))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=10)


def _valid() -> dict[str, Any]:
    return {"device_id": "cam-01", "bundle": "bundles/b", "sources": [{"uri": "clip.mp4"}],
            "mqtt": {"host": "127.0.0.1", "port": 1883}, "outbox": {"path": "state/outbox.db"}}


MUTATIONS = st.lists(st.tuples(st.sampled_from(sorted(TABLES)), KEYS, VALUES | st.none()), max_size=4)


def _mutate(doc: dict[str, Any], mutations: list[tuple[str, str, Any]]) -> dict[str, Any]:
    """Set (None: delete) a key at the top level or in one table; a table that is not a dict is replaced."""
    for table, key, value in mutations:
        if table == "":
            target = doc
        elif table in ("sources", "rules"):
            items = doc.get(table)
            if not isinstance(items, list) or not items or not isinstance(items[0], dict):
                doc[table] = items = [{}]
            target = items[0]
        elif table == "tls":
            mqtt = doc.setdefault("mqtt", {})
            if not isinstance(mqtt, dict):
                doc["mqtt"] = mqtt = {}
            if not isinstance(mqtt.get("tls"), dict):
                mqtt["tls"] = {}
            target = mqtt["tls"]
        else:
            if not isinstance(doc.get(table), dict):
                doc[table] = {}
            target = doc[table]
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    return doc


def load_config_text(folder: Path, data: bytes) -> None:
    """The property: load_config returns or raises ConfigError, nothing else."""
    file = folder / "agent.toml"
    file.write_bytes(data)
    try:
        load_config(file)
    except ConfigError:
        pass  # a named refusal is the right answer for bad input


DEEP_ARRAY = b"a = " + b"[" * 5000 + b"]" * 5000
DEEP_TABLE = b"a = " + b"{b = " * 3000 + b"1" + b"}" * 3000


@fuzz(1000)
@given(data=st.binary(max_size=400))
@example(data=DEEP_ARRAY)
@example(data=DEEP_TABLE)
@example(data=b"threads = " + b"9" * 5000)
@example(data=b"\xff\xfe\x00")
def test_config_loader_survives_any_bytes(scratch: Path, data: bytes) -> None:
    load_config_text(scratch, data)


@fuzz(1000)
@given(text=st.text(alphabet=st.sampled_from('abc=[]{}"\'\n ,.#0123456789-_:tfrueals\\u'), max_size=200)
            | st.text(max_size=200))
def test_config_loader_survives_any_text(scratch: Path, text: str) -> None:
    load_config_text(scratch, text.encode("utf-8", errors="surrogatepass"))


@fuzz(800)
@given(doc=st.dictionaries(KEYS, VALUES, max_size=6))
def test_config_loader_survives_any_toml_document(scratch: Path, doc: dict[str, Any]) -> None:
    load_config_text(scratch, to_toml(doc).encode("utf-8", errors="surrogatepass"))


@fuzz(900)
@given(mutations=MUTATIONS)
@example(mutations=[("mqtt", "password_file", "pw-empty")])
@example(mutations=[("mqtt", "password_file", "pw-latin1")])
@example(mutations=[("mqtt", "password_file", "x" * 5000)])
@example(mutations=[("mqtt", "password_file", "a\0b")])
@example(mutations=[("tls", "ca", "folder")])
@example(mutations=[("", "bundle", "\ud800")])
@example(mutations=[("rules", "zone", [[0, 0], [1, Raw("9" * 5000)], [2, 2]])])
def test_config_loader_survives_near_valid_configs(scratch: Path, mutations: list[tuple[str, str, Any]]) -> None:
    doc = _mutate(_valid(), mutations)
    load_config_text(scratch, to_toml(doc).encode("utf-8", errors="surrogatepass"))


@fuzz(300)
@given(content=st.binary(max_size=40))
@example(content=b"")
@example(content=b"\n\npw")
@example(content=b"\xff")
def test_password_file_is_read_or_refused_by_name(scratch: Path, content: bytes) -> None:
    (scratch / "pw-fuzz").write_bytes(content)
    (scratch / "agent.toml").write_text(to_toml(_mutate(_valid(), [("mqtt", "password_file", "pw-fuzz")])))
    try:
        config = load_config(scratch / "agent.toml")
    except ConfigError as exc:
        assert "mqtt.password_file" in str(exc)
        return
    from device_agent.service.config import mqtt_password

    assert mqtt_password(config) == content.decode("utf-8").splitlines()[0].strip() != ""


# -- the manifest reader ----------------------------------------------------------------------------
MANIFEST_KEYS = st.sampled_from(["schema", "name", "version", "model", "files", "inputs", "outputs", "task",
                                 "target", "file", "sha256", "size_bytes", "shape", "dtype"]) | st.text(max_size=6)
# st.text() never draws a lone surrogate, which JSON can escape ("\\ud800"): drawn on purpose
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
                    | st.just("edgekit.bundle/1") | st.sampled_from(["\ud800", "a\udfff"]),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(MANIFEST_KEYS, inner, max_size=4),
                    max_leaves=12)


def parse_or_refuse(data: bytes | str) -> Manifest | None:
    """The property, plus: what parses can be printed (the CLI prints the name and version on stdout)."""
    try:
        manifest = parse_manifest(data)
    except BundleError:
        return None
    manifest.to_json().encode("utf-8")
    json.dumps(manifest.model_dump(mode="json"), ensure_ascii=False).encode("utf-8")
    return manifest


@fuzz(800)
@given(data=st.binary(max_size=300))
@example(data=b"[" * 100_000 + b"]" * 100_000)
@example(data=b'{"schema": "edgekit.bundle/1", "a": ' + b"[" * 40 + b"]" * 40 + b"}")
@example(data=b"1" * 5000)
@example(data=b'{"name": "\xe9"}')
@example(data=b'"\\ud800"')
@example(data=b'{"schema": "edgekit.bundle/1", "name": "\\ud800"}')  # verify crashed printing this name
def test_manifest_reader_survives_any_bytes(data: bytes) -> None:
    parse_or_refuse(data)


@fuzz(600)
@given(doc=JSON | st.dictionaries(MANIFEST_KEYS, JSON, max_size=8).map(lambda d: {**d, "schema": "edgekit.bundle/1"}))
def test_manifest_reader_survives_any_json_structure(doc: Any) -> None:
    parse_or_refuse(json.dumps(doc))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    if value is None and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@pytest.fixture(scope="module")
def good_manifest(good_bundle: Path) -> dict[str, Any]:  # noqa: F811
    return json.loads((good_bundle / "manifest.json").read_text())


@fuzz(600)
@given(data=st.data())
def test_manifest_reader_survives_near_valid_manifests(good_manifest: dict[str, Any], data: st.DataObject) -> None:
    doc = json.loads(json.dumps(good_manifest))
    paths = _paths(doc)
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        doc = _set(doc, path, data.draw(JSON))
        paths = _paths(doc)
    parse_or_refuse(json.dumps(doc))


def test_a_manifest_that_is_no_text_is_refused(good_manifest: dict[str, Any]) -> None:
    """Found by the property above: a name of one lone surrogate parsed, then verify crashed printing it."""
    with pytest.raises(BundleError, match="lone surrogate") as info:
        parse_manifest(json.dumps({**good_manifest, "name": "\ud800"}))
    assert info.value.check == "manifest-json"


@pytest.fixture(scope="module")
def fuzz_bundle(good_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """One copy of the real bundle whose manifest.json each example overwrites."""
    return Path(shutil.copytree(good_bundle, tmp_path_factory.mktemp("fuzz-bundle") / "b"))


def load_or_refuse(bundle: Path, manifest: bytes) -> None:
    (bundle / "manifest.json").write_bytes(manifest)
    try:
        load_bundle(bundle)
    except BundleError:
        pass


@fuzz(200)
@given(data=st.binary(max_size=300))
def test_load_bundle_survives_any_manifest_bytes(fuzz_bundle: Path, data: bytes) -> None:
    load_or_refuse(fuzz_bundle, data)


FILE_NAMES = st.sampled_from(["../x", "/etc/passwd", "", ".", "a\0b", "\ud800", "x" * 5000, "golden.npz",
                              "manifest.json", "sub/../model.fp32.onnx", "model.fp32.onnx/", "\\x"])


def test_the_unmodified_manifest_loads(fuzz_bundle: Path, good_manifest: dict[str, Any]) -> None:
    (fuzz_bundle / "manifest.json").write_text(json.dumps(good_manifest))
    assert load_bundle(fuzz_bundle).manifest.name == good_manifest["name"]


@fuzz(300)
@given(data=st.data())
def test_load_bundle_survives_near_valid_manifests(
    fuzz_bundle: Path, good_manifest: dict[str, Any], data: st.DataObject
) -> None:
    doc = json.loads(json.dumps(good_manifest))
    for _ in range(data.draw(st.integers(1, 2))):
        files = doc.get("files") if isinstance(doc, dict) else None
        if isinstance(files, dict) and files and data.draw(st.booleans()):  # rename a listed file
            name = data.draw(FILE_NAMES | st.text(max_size=10))
            files[name] = files.pop(data.draw(st.sampled_from(sorted(files))))
        else:
            doc = _set(doc, data.draw(st.sampled_from(_paths(doc))), data.draw(JSON))
    load_or_refuse(fuzz_bundle, json.dumps(doc).encode("utf-8", errors="surrogatepass"))


@fuzz(600)
@given(data=st.binary(max_size=300))
@example(data=b"\x3a" + b"\x80" * 20)  # a length varint that never ends
@example(data=b"\x3a\xff\xff\xff\xff\x0f")  # a length far past the end
def test_external_data_parser_survives_any_bytes(data: bytes) -> None:
    found = external_data_locations(data)
    assert found is None or all(isinstance(name, str) for name in found)
