"""Send one push through a running gateway: `python examples/send.py 127.0.0.1:50051`."""

from __future__ import annotations

import asyncio
import sys

from smartpush.gateway.v1 import delivery_pb2, push_service_pb2, template_pb2
from smartpush_gateway_client import GatewayCallError, GatewayClient


async def main(target: str) -> int:
    request = push_service_pb2.SendRequest(
        project_id="demo-project",
        sub="demo-user",
        delivery=delivery_pb2.DeliveryConfig(
            delivery_mode=delivery_pb2.DELIVERY_MODE_BROADCAST,
            destinations=[delivery_pb2.Destination(surface=delivery_pb2.SURFACE_COMPANION)],
            template_content=template_pb2.TemplateContent(id="49061553-27c7-4471-9145-d8d6137c57da"),
        ),
    )
    async with GatewayClient(target) as client:
        try:
            response = await client.send(request)
        except GatewayCallError as err:
            print(err.code.name, err.reason, err.field_violations, err.rq_uid, file=sys.stderr)
            return 1
    for result in response.results:
        print(delivery_pb2.Surface.Name(result.surface), result.status_code, result.description)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051")))
