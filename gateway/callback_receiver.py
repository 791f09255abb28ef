"""The delivery-status receiver: an aiohttp server on its own port that SmartPush POSTs to.

The URL's last path segment is the per-send token; anything else about the request is untrusted.
Unknown tokens are 404, bodies over `max_body_bytes` 413, unreadable ones 400, a store that cannot
answer 503 (so SmartPush may retry); accepted and duplicate callbacks are 200.
"""

from __future__ import annotations

import logging

from aiohttp import web

from gateway.config import CallbackSettings
from gateway.delivery_status import DeliveryStatuses
from gateway.errors import GatewayError
from gateway.telemetry import Telemetry

log = logging.getLogger(__name__)
_STATUS = {"accepted": 200, "duplicate": 200, "unknown_token": 404, "malformed": 400}


def make_receiver(statuses: DeliveryStatuses, settings: CallbackSettings, telemetry: Telemetry) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        token = request.path.rstrip("/").rsplit("/", 1)[-1]
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            telemetry.callbacks.add(1, {"smartpush.callback.outcome": "too_large"})
            raise
        try:
            receipt = await statuses.receive(token, raw)
        except GatewayError:
            telemetry.callbacks.add(1, {"smartpush.callback.outcome": "store_unavailable"})
            return web.json_response({"error": "try again"}, status=503)
        telemetry.callbacks.add(1, {"smartpush.callback.outcome": receipt.outcome})
        log.info("delivery-status callback", extra={"outcome": receipt.outcome, "rq_uid": receipt.rq_uid or None})
        status = _STATUS[receipt.outcome]
        return web.json_response({"outcome": receipt.outcome}, status=status)

    app = web.Application(client_max_size=settings.max_body_bytes)
    app.router.add_post("/{tail:.*}", receive)
    return app


async def start_receiver(
    statuses: DeliveryStatuses, settings: CallbackSettings, telemetry: Telemetry
) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(make_receiver(statuses, settings, telemetry), access_log=None, handle_signals=False)
    await runner.setup()
    host, _, port = settings.listen.rpartition(":")
    site = web.TCPSite(runner, host.strip("[]") or "0.0.0.0", int(port), reuse_address=True)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    return runner, sockets[0].getsockname()[1] if sockets else int(port)
