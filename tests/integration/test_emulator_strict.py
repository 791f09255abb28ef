"""The emulator is strict by default: it accepts what SmartPush documents and nothing we merely assume.

Each request goes to the emulator over real HTTP, the way any SmartPush client would call it.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway.emulator import DEMO_CLIENT_ID, DEMO_SECRET, DEMO_TEMPLATE_ID, EmulatorServer
from tests.helpers import PROJECT, SUB, EmulatorAdmin

FRAME = {"startTime": "09:00:00", "finishTime": "18:00:00", "timeZone": "GMT+03:00", "startDate": "2026-12-01"}


def body(destination: dict[str, Any] | None = None, *, mode: str = "BROADCAST") -> dict[str, Any]:
    dest = destination or {
        "channel": "COMPANION_B2C",
        "surface": "COMPANION",
        "templateContent": {"id": DEMO_TEMPLATE_ID, "headerValues": {}, "bodyValues": {}},
    }
    return {
        "requestPayload": {
            "protocolVersion": "V1",
            "messageId": 1,
            "messageName": "SEND_PUSH",
            "payload": {
                "sender": {"projectId": PROJECT},
                "recipient": {"clientId": {"idType": "SUB", "id": SUB}},
                "deliveryConfig": {"deliveryMode": mode, "destinations": [dest]},
            },
        }
    }


def device(**params: Any) -> dict[str, Any]:
    return {
        "channel": "B2C",
        "surface": "SBERBOX",
        "templateContent": {"id": DEMO_TEMPLATE_ID, "headerValues": {}, "bodyValues": {}, "deviceParameters": params},
    }


def companion(**extra: Any) -> dict[str, Any]:
    content = {"id": DEMO_TEMPLATE_ID, "headerValues": {}, "bodyValues": {}, **extra.pop("content", {})}
    return {"channel": "COMPANION_B2C", "surface": "COMPANION", "templateContent": content, **extra}


class Client:
    def __init__(self, url: str) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=5)
        self.token = ""

    async def get_token(self) -> httpx.Response:
        basic = base64.b64encode(f"{DEMO_CLIENT_ID}:{DEMO_SECRET}".encode()).decode()
        return await self.http.post(
            "/api/v2/oauth",
            content=b"scope=SMART_PUSH",
            headers={
                "Authorization": f"Basic {basic}",
                "RqUID": str(uuid.uuid4()),
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )

    async def send(self, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not self.token:
            self.token = (await self.get_token()).json()["access_token"]
        r = await self.http.post(
            "/api/v2/smartpush/apprequest",
            json=payload,
            headers={"Authorization": f"Bearer {self.token}", "RqUID": str(uuid.uuid4())},
        )
        return r.status_code, r.json()


@pytest.fixture
async def client(emulator: EmulatorServer) -> AsyncIterator[Client]:
    c = Client(emulator.url)
    yield c
    await c.http.aclose()


def codes(answer: dict[str, Any]) -> list[int]:
    return [r["status"]["code"] for r in answer["payload"]["validation"]["results"]]


VARIANTS = [
    # (what, the body, the strict answer: HTTP status or the destination's status code)
    ("unwrapped body", body()["requestPayload"], 400),
    ("lower-case deliveryMode", body(mode="broadcast"), 1003),
    ("timeFrame beside templateContent", body(companion(timeFrame=FRAME)), 1000),
    ("device deepLink key", body(device(deepLink="x")), 1000),
    ("deviceSerialFilter as an object", body(device(deeplink="x", deviceSerialFilter={"serialNumber": "A"})), 1000),
    ("an unknown key", body(companion(content={"timeframe": FRAME})), 1000),
]


@pytest.mark.parametrize(("what", "payload", "strict"), VARIANTS, ids=[v[0] for v in VARIANTS])
async def test_strict_refuses_what_the_gateway_does_not_send_and_lenient_takes_it(
    client: Client, admin: EmulatorAdmin, what: str, payload: dict[str, Any], strict: int
) -> None:
    status, answer = await client.send(payload)
    if strict == 400:
        assert status == 400, what
    else:
        assert codes(answer) == [strict], what
    await admin.config(lenient=True)
    status, answer = await client.send(payload)
    assert status == 200, what
    assert codes(answer) == [0], what


async def test_time_frame_inside_template_content_is_checked(client: Client) -> None:
    _, ok = await client.send(body(companion(content={"timeFrame": FRAME})))
    assert codes(ok) == [0]
    _, bad = await client.send(body(companion(content={"timeFrame": {**FRAME, "startTime": "25:00:00"}})))
    assert codes(bad) == [1008]
    assert bad["errors"][0]["key"].endswith("templateContent.timeFrame")
    _, conflict = await client.send(body(companion(content={"timeFrame": {**FRAME, "startTime": "19:00:00"}})))
    assert codes(conflict) == [1001]


async def test_push_content_with_template_content_is_1001(client: Client) -> None:
    _, answer = await client.send(body(companion(pushContent={"text": "hi"})))
    assert codes(answer) == [1001]


async def test_result_is_one_object_as_documented(client: Client, admin: EmulatorAdmin) -> None:
    both = body()
    both["requestPayload"]["payload"]["deliveryConfig"]["destinations"].append(device(deeplink="x"))
    _, answer = await client.send(both)
    assert isinstance(answer["payload"]["result"], dict)
    assert codes(answer) == [0, 0]
    await admin.config(result_shape="list")
    _, answer = await client.send(both)
    assert [r["surface"] for r in answer["payload"]["result"]] == ["COMPANION", "SBERBOX"]


@pytest.mark.parametrize(
    ("limit", "code"),
    [
        ("overall_limit_per_hour", 1014),
        ("overall_limit_per_day", 1014),
        ("per_user_limit_per_hour", 1018),
        ("per_user_limit_per_day", 1018),
    ],
)
async def test_hour_and_day_limits(client: Client, admin: EmulatorAdmin, limit: str, code: int) -> None:
    await admin.config(**{limit: 2})
    answers = [codes((await client.send(body()))[1]) for _ in range(3)]
    assert answers == [[0], [0], [code]]


async def test_the_token_endpoint_is_rate_limited(client: Client, admin: EmulatorAdmin) -> None:
    await admin.config(token_limit_per_second=3)
    statuses = [(await client.get_token()).status_code for _ in range(5)]
    assert statuses[:3] == [200, 200, 200]
    assert 429 in statuses[3:]
