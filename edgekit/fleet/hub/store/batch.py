"""Received messages turned into table rows, once, before a backend writes them in one transaction.

A backend claims each ``(device, seq)`` in its seq table (the dedup key of the contract: every
message the outbox commits, whatever its kind, takes the next seq of its device) and writes the
rows of the claimed seqs only; what it could not claim is a duplicate. Duplicates inside one
batch are dropped here, the first copy kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from device_agent.protocol import AlertEvent, Envelope, GapEvent, Metrics, Received, Result, Status
from edgekit.fleet.hub.store.records import Alert

Key = tuple[str, int]
"""``(device, seq)``."""


@dataclass(frozen=True)
class SeqRow:
    device: str
    seq: int
    boot: str
    kind: str
    ts: float


@dataclass(frozen=True)
class MessageRow:
    """One result, event or metrics message: its envelope, the columns its table adds, the JSON payload."""

    device: str
    seq: int
    boot: str
    ts: float
    payload_json: str
    columns: tuple[Any, ...] = ()
    """results: (model name, version, precision); events: (kind,); metrics: ()."""


@dataclass(frozen=True)
class LostRow:
    """A run of seqs a gap event announced lost (``seq`` is the gap event's own)."""

    device: str
    seq: int
    boot: str
    ts: float
    first_seq: int
    last_seq: int
    reason: str


@dataclass(frozen=True)
class StatusRow:
    device: str
    online: bool
    ts: float
    agent: str
    model: tuple[str, str, str]
    payload_json: str


@dataclass
class Batch:
    """Rows by table, keyed by ``(device, seq)`` so a backend keeps those whose seq it claimed."""

    seqs: list[SeqRow] = field(default_factory=list)
    results: dict[Key, MessageRow] = field(default_factory=dict)
    events: dict[Key, MessageRow] = field(default_factory=dict)
    metrics: dict[Key, MessageRow] = field(default_factory=dict)
    lost: dict[Key, list[LostRow]] = field(default_factory=dict)
    alerts: dict[Key, Alert] = field(default_factory=dict)
    statuses: dict[str, StatusRow] = field(default_factory=dict)
    seen: dict[str, float] = field(default_factory=dict)
    """device -> when the hub received its latest message in this batch."""
    duplicates: int = 0
    """Copies of a ``(device, seq)`` already in this batch."""

    def claimed_seqs(self, keys: set[Key]) -> list[SeqRow]:
        """The seq rows the backend just claimed."""
        return [row for row in self.seqs if (row.device, row.seq) in keys]

    def claimed(self, keys: set[Key]) -> ClaimedRows:
        """The rows of the seqs the backend just claimed (the others are duplicates)."""
        pick = lambda rows: [row for key, row in rows.items() if key in keys]  # noqa: E731
        return ClaimedRows(results=pick(self.results), events=pick(self.events), metrics=pick(self.metrics),
                           lost=[row for key, rows in self.lost.items() if key in keys for row in rows],
                           alerts=pick(self.alerts))


@dataclass(frozen=True)
class ClaimedRows:
    results: list[MessageRow]
    events: list[MessageRow]
    metrics: list[MessageRow]
    lost: list[LostRow]
    alerts: list[Alert]

    def counts(self) -> dict[str, int]:
        return {"results": len(self.results), "events": len(self.events), "metrics": len(self.metrics)}

    def latest_metrics(self) -> dict[str, MessageRow]:
        """device -> its metrics message with the highest seq in this batch."""
        latest: dict[str, MessageRow] = {}
        for row in self.metrics:
            if row.device not in latest or row.seq > latest[row.device].seq:
                latest[row.device] = row
        return latest


def prepare(messages: Iterable[Received], received_at: float) -> Batch:
    """Sort ``messages`` into rows; replies and kinds the store does not keep are skipped."""
    batch = Batch()
    keys: set[Key] = set()
    for received in messages:
        message = received.message
        batch.seen[received.device] = received_at
        if isinstance(message, Status):
            _status(batch, message, received)
            continue
        envelope = received.envelope
        if envelope is None or received.kind not in ("results", "events", "metrics"):
            continue
        key = (envelope.device, envelope.seq)
        if key in keys:
            batch.duplicates += 1
            continue
        keys.add(key)
        batch.seqs.append(SeqRow(envelope.device, envelope.seq, envelope.boot, received.kind, envelope.ts))
        _message(batch, key, envelope, message, _payload_json(received))
    return batch


def _status(batch: Batch, status: Status, received: Received) -> None:
    previous = batch.statuses.get(status.device)
    if previous is not None and previous.ts > status.ts:
        return
    model = (status.model.name, status.model.version, status.model.precision)
    batch.statuses[status.device] = StatusRow(status.device, status.state == "online", status.ts, status.agent,
                                              model, _payload_json(received))


def _message(batch: Batch, key: Key, envelope: Envelope, message: object, payload_json: str) -> None:
    def row(*columns: Any) -> MessageRow:
        return MessageRow(envelope.device, envelope.seq, envelope.boot, envelope.ts, payload_json, columns)

    if isinstance(message, Result):
        batch.results[key] = row(message.model.name, message.model.version, message.model.precision)
    elif isinstance(message, Metrics):
        batch.metrics[key] = row()
    else:
        kind = str(getattr(message, "kind", "unknown"))
        batch.events[key] = row(kind)
        if isinstance(message, GapEvent):
            batch.lost[key] = [LostRow(envelope.device, envelope.seq, envelope.boot, envelope.ts, int(first),
                                       int(last), message.reason)
                               for first, last in (message.ranges or [[message.first_seq, message.last_seq]])]
        elif isinstance(message, AlertEvent):
            detail = message.model_dump(mode="json", include={"rule", "label", "score", "frames", "source",
                                                              "frame_id"})
            batch.alerts[key] = Alert(envelope.device, "rule", envelope.ts, message.state, detail, envelope.seq)


def _payload_json(received: Received) -> str:
    """The payload's JSON text: the bytes as received when they are UTF-8 (parsing already proved them JSON;
    decoding and encoding again would cost the ingest about 40 % of its time), else the payload re-encoded."""
    if received.raw:
        try:
            return received.raw.decode("utf-8")
        except UnicodeDecodeError:  # JSON in UTF-16/32, which json.loads accepts
            pass
    return json.dumps(received.payload(), separators=(",", ":"))
