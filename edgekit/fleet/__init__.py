"""The host side of the MQTT contract: watching devices (monitor), asking them to act (remote),
a local broker for demos.

Imports the contract from :mod:`device_agent.protocol` and nothing from :mod:`edgekit.optimize`
or ``converters``: the fleet side runs where no model toolchain is installed."""
