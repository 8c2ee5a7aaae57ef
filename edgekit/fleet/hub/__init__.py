"""The hub: every device's messages stored, shown and watched (issue 17).

- :mod:`.store`: where the messages go (SQLite by default, PostgreSQL), one interface.
- :mod:`.observer`: what the ingest tells the hub's other parts after each committed batch.
"""
