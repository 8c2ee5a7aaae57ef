"""Getting every message to the broker: the durable outbox, group commit, the MQTT publisher and the link state."""
