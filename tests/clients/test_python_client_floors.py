"""The Python client as a consumer gets it: wheels built from the repository (the stubs
distribution and the client SDK), installed into a fresh virtualenv outside the source tree with
the oldest grpcio and protobuf it accepts, and with the newest the index offers; each sends to a
running gateway and decodes a validation error."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import GatewayFactory

ROOT = Path(__file__).resolve().parents[2]
FLOORS = ["grpcio==1.85.1", "grpcio-status==1.85.1", "protobuf==7.35.1", "googleapis-common-protos==1.76.0"]

SCRIPT = textwrap.dedent(
    """
    import sys
    import grpc, google.protobuf
    from smartpush.gateway.v1 import delivery_pb2, push_service_pb2, push_service_pb2_grpc, template_pb2
    from smartpush_gateway_client.errors import decode

    if sys.argv[3] == "oldest":
        assert grpc.__version__ == "1.85.1", grpc.__version__
        assert google.protobuf.__version__ == "7.35.1", google.protobuf.__version__
    stub = push_service_pb2_grpc.PushServiceStub(grpc.insecure_channel(sys.argv[1]))
    request = push_service_pb2.SendRequest(
        project_id="p", sub="u",
        delivery=delivery_pb2.DeliveryConfig(
            delivery_mode=delivery_pb2.DELIVERY_MODE_BROADCAST,
            destinations=[delivery_pb2.Destination(surface=delivery_pb2.SURFACE_COMPANION)],
            template_content=template_pb2.TemplateContent(id=sys.argv[2]),
        ),
    )
    print(stub.Send(request, timeout=10).results[0].status_code)
    request.delivery.template_content.mobile_app_parameters.button_text = "x" * 31
    try:
        stub.Send(request, timeout=10)
    except grpc.RpcError as err:
        e = decode(err)
        print(e.code.name, e.reason, e.field_violations[0].field)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize("versions", ["oldest", "newest"])
async def test_the_client_wheels_work_on_their_oldest_and_newest_dependencies(
    make_gateway: GatewayFactory, tmp_path: Path, versions: str
) -> None:
    from gateway.emulator import DEMO_TEMPLATE_ID

    gw = await make_gateway()
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"

    def run(*argv: str | Path, cwd: Path = tmp_path) -> str:
        done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done.stdout

    import asyncio

    await asyncio.to_thread(
        run,
        *(sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", wheels),
        *(ROOT / "clients/python-protos", ROOT / "clients/python"),
    )
    await asyncio.to_thread(run, sys.executable, "-m", "venv", venv)
    (wheel,) = wheels.glob("smartpush_gateway_client-*.whl")
    # The stubs distribution is found beside the SDK's wheel, as a consumer's index would serve it.
    pins = FLOORS if versions == "oldest" else ["--upgrade"]
    await asyncio.to_thread(run, venv / "bin/pip", "install", "-q", "--find-links", wheels, wheel, *pins)
    (tmp_path / "consumer.py").write_text(SCRIPT)
    out = await asyncio.to_thread(run, venv / "bin/python", "consumer.py", gw.address, DEMO_TEMPLATE_ID, versions)
    assert out.split("\n")[:2] == [
        "0",
        "INVALID_ARGUMENT ERROR_REASON_INVALID_REQUEST delivery.template_content.mobile_app_parameters.button_text",
    ]
