"""The hub: every device's messages stored, shown and watched (issue 17).

- :mod:`.store`: where the messages go (SQLite by default, PostgreSQL), one interface.
- :mod:`.observer`: what the ingest tells the hub's other parts after each committed batch.
- :mod:`.ingest`: MQTT deliveries batched into the store, acknowledged once committed.
- :mod:`.service`: :class:`~edgekit.fleet.hub.service.Hub`, the long-running service composing them,
  with housekeeping (observers' ticks, retention) and the HTTP app (:mod:`.app`, :mod:`.http_server`).
- :mod:`.durations`, :mod:`.throttle`: the command's duration and address flags; throttled log lines.
"""
