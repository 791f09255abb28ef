"""A faithful SmartPush emulator (token and send endpoints, documented codes, fault injection).

Run it with `smartpush-gateway emulator --listen 127.0.0.1:PORT`; drive it over
`/_emulator/` (see `app.py`).
"""

from gateway.emulator.app import EmulatorServer, start_emulator
from gateway.emulator.state import DEMO_CLIENT_ID, DEMO_SECRET, DEMO_TEMPLATE_ID, EmulatorConfig

__all__ = [
    "DEMO_CLIENT_ID",
    "DEMO_SECRET",
    "DEMO_TEMPLATE_ID",
    "EmulatorConfig",
    "EmulatorServer",
    "start_emulator",
]
