"""The hub: every device's messages stored, shown and watched (issue 17).

- :mod:`.store`: where the messages go (SQLite by default, PostgreSQL), one interface.
"""
