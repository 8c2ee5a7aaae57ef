"""Ask a running ``edgekit-agent`` to do something over MQTT, and wait for its answer.

The exchange (design.md, MQTT contract): subscribe to ``edgekit/v1/<device>/reply/<request_id>``
first, then publish the command to ``edgekit/v1/<device>/cmd/<name>`` (QoS 1, never
retained: an agent refuses retained commands). The device answers ``running``, then ``done``
with a result, or ``error`` / ``refused`` / ``busy`` (too many commands waiting) with a message.
Replies travel through the
device's durable outbox, so one may arrive twice; they are deduplicated on ``(device, seq)``.
The command is built through its model and every reply parsed through the contract
(:mod:`device_agent.protocol`): a malformed reply is named in the error if no good one comes.

:func:`remote_benchmark` is the benchmark a hosted device-profiling service would run, on the
user's own device: the agent pauses inference, measures its active bundle in a fresh process
and sends back the same record ``edgekit benchmark --json`` prints for a local model.
"""

from __future__ import annotations

import json
import queue
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from device_agent.bench.options import BenchOptions
from device_agent.bench.record import BenchRecord
from device_agent.errors import ProtocolError
from device_agent.protocol import COMMANDS, Reply, Topics, parse
from device_agent.service.config_errors import explain
from edgekit.errors import RemoteError, UsageError
from edgekit.fleet.session import MqttSession

REMOTE_OPTIONS = {"runs", "duration_s", "warmup", "threads", "profile"}
"""The options a bench command carries; the device picks its runtime and providers from its bundle."""
_DEVICE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # the agent config's device_id pattern


def remote_benchmark(
    broker: str,
    device: str,
    *,
    options: BenchOptions,
    bundle: Path | None = None,
    samples: bool = False,
    timeout_s: float = 180.0,
    on_state: Callable[[str], None] | None = None,
) -> BenchRecord:
    """Benchmark the active bundle of ``device`` through the agent it runs; return the device's record.

    ``broker`` is ``HOST:PORT``. ``options`` gives runs or duration_s, warmup, threads and
    profile (the device runs its bundle's own runtime, so ``options.runtime`` must be None).
    With ``bundle`` (a bundle directory, or a model file) the device refuses unless its active
    model has the same sha256, so the numbers are known to be for that model. ``samples``
    asks for every timed run's latency (``samples_ms``). ``on_state`` is called with
    ``"sent"`` once the broker has the command and ``"running"`` when the device starts.

    The record is the one ``edgekit benchmark --json`` prints per model (``latency_ms`` with
    p50/p90/p99/mean, ``load_ms``, ``first_ms``, ``peak_rss_mb``, ``runs``, ...), with
    ``device`` and ``remote=True`` set. Raises :class:`UsageError` for a bad broker,
    device id or bundle, and :class:`RemoteError` when the broker cannot be reached, the
    device refuses or fails, or no answer arrives within ``timeout_s``.
    """
    if options.runtime is not None:
        raise UsageError(f"--runtime {options.runtime!r}: a remote benchmark runs the device's bundle with its own "
                         "runtime; leave --runtime out")
    body = {**options.model_dump(include=REMOTE_OPTIONS, exclude_none=True), "samples": samples}
    if bundle is not None:
        body["model_sha256"] = model_sha256(Path(bundle))
    reply = send_command(broker, device, "bench", body, timeout_s=timeout_s, on_state=on_state)
    result = reply.get("result")
    if not isinstance(result, dict):
        raise RemoteError(f"device {device!r} answered 'done' without a result record: {json.dumps(reply)[:200]}")
    try:  # a newer agent may add keys: read what this host knows (the contract's rule), require the rest
        record = BenchRecord.model_validate(result, extra="ignore")
    except ValidationError as exc:
        raise RemoteError(f"device {device!r} answered with a record this host cannot read (another agent "
                          f"version?): {explain(exc)}") from None
    return record.model_copy(update={"device": device, "remote": True})


def model_sha256(path: Path) -> str:
    """The sha256 of the model a bundle directory holds (from its verified manifest), or of a model file."""
    from device_agent.bundle.verify import load_bundle, sha256_file
    from device_agent.errors import BundleError

    if path.is_dir():
        try:
            return load_bundle(path, check_model_io=False).manifest.model.sha256
        except BundleError as exc:
            raise UsageError(f"bundle {str(path)!r}: {exc}") from exc
    if path.is_file():
        return sha256_file(path)
    raise UsageError(f"{str(path)!r} does not exist; expected a bundle directory or a model file")


def send_command(
    broker: str,
    device: str,
    name: str,
    body: dict[str, Any],
    *,
    timeout_s: float,
    on_state: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Send command ``name`` with ``body`` to ``device``; return its final ``done`` reply.

    ``body`` gets ``v`` and a fresh ``request_id``. Replies other than ``running`` and ``done``
    (``error``, ``refused``) raise :class:`RemoteError` with the device's message.
    """
    request_id = uuid.uuid4().hex
    reply_topic = Topics(device).reply(request_id)  # formatting only: the device id is checked below
    events: queue.Queue[tuple[Any, ...]] = queue.Queue()  # paho's thread only posts here
    session = MqttSession(  # checks the broker address first, as before
        broker, topic=reply_topic, purpose="talking to a device", client_id=f"edgekit-remote-{request_id[:12]}",
        error=RemoteError,
        on_refused=lambda reason: events.put(("refused", reason)),
        on_subscribed=lambda refusals: events.put(("subscribed", refusals)),
        on_published=lambda mid, failed, reason: events.put(("puback", mid, failed, reason)),
        on_message=lambda _topic, payload: events.put(("message", payload)),  # only reply_topic's
        on_disconnected=lambda reason: events.put(("disconnected", reason)))
    if not _DEVICE_ID.fullmatch(device):
        raise UsageError(f"--device {device!r}: expected 1-64 of A-Z a-z 0-9 _ . - (the agent's device_id)")
    if not timeout_s > 0:
        raise UsageError(f"timeout must be a positive number of seconds, got {timeout_s}")
    payload = _command_payload(name, {**body, "v": 1, "request_id": request_id})
    notify = on_state or (lambda _state: None)
    with session:
        return _exchange(events, session, device=device, name=name, request_id=request_id, payload=payload,
                         reply_topic=reply_topic, broker=session.address, timeout_s=timeout_s, notify=notify)


def _command_payload(name: str, body: dict[str, Any]) -> str:
    """The command as JSON, validated by the same model the device validates it with."""
    schema = COMMANDS.get(name)
    if schema is None:
        raise UsageError(f"unknown command {name!r}; the allowed commands are: {', '.join(sorted(COMMANDS))}")
    try:
        command = schema.model_validate(body)
    except ValidationError as exc:
        raise UsageError(f"command {name!r}: {explain(exc)}") from None
    return command.model_dump_json(exclude_none=True)


def _exchange(events: queue.Queue[tuple[Any, ...]], client: Any, *, device: str, name: str, request_id: str,
              payload: str, reply_topic: str, broker: str, timeout_s: float,
              notify: Callable[[str], None]) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    command_mid: int | None = None
    running = False
    seen: set[tuple[Any, Any]] = set()
    last_problem = ""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            event = events.get(timeout=left)
        except queue.Empty:
            break
        kind = event[0]
        if kind == "refused":
            raise RemoteError(f"the broker at {broker} refused the connection: {event[1]}")
        if kind == "disconnected":
            last_problem = f"; the connection to {broker} dropped ({event[1]})"
        elif kind == "subscribed":
            if event[1]:
                raise RemoteError(f"the broker at {broker} refused the subscription to {reply_topic}: {event[1][0]}")
            if command_mid is None:  # a reconnect subscribes again; the command is sent once
                info = client.publish(Topics(device).cmd(name), payload, qos=1, retain=False)
                command_mid = info.mid
        elif kind == "puback" and event[1] == command_mid:
            if event[2]:
                raise RemoteError(f"the broker at {broker} refused the command for {device!r}: {event[3]}")
            notify("sent")
        elif kind == "message":
            try:
                received = parse(reply_topic, event[1])  # the one topic subscribed to
            except ProtocolError as exc:
                last_problem = f"; a malformed reply was ignored: {exc}"
                continue
            reply, envelope = received.message, received.envelope
            if not isinstance(reply, Reply) or reply.request_id != request_id or envelope is None:
                continue  # not ours
            key = (envelope.device, envelope.seq)
            if key in seen:
                continue  # the outbox resent it (it was in flight when a connection dropped)
            seen.add(key)
            state = reply.state
            if state == "running" and not running:
                running = True
                notify("running")
            elif state == "done":
                return received.payload()
            elif state in ("error", "refused", "busy"):
                message = reply.error or reply.reason or "no reason given"
                verb = {"refused": "refused", "busy": "is busy and did not run"}.get(state, "failed")
                raise RemoteError(f"device {device!r} {verb} the {name} command: {message}")
    if running:
        raise RemoteError(f"device {device!r} started the {name} command but sent no result on {reply_topic} "
                          f"within {timeout_s:g} s{last_problem}")
    raise RemoteError(f"device {device!r} did not answer on {reply_topic} within {timeout_s:g} s; is the agent "
                      f"running and connected to {broker}?{last_problem}")
