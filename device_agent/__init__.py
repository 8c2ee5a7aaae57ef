"""The EdgeKit device agent: runs a bundle on camera frames and reports over MQTT.

Imports nothing from ``edgekit`` or ``converters``: a device installs only this.
"""

__version__ = "0.1.0"
