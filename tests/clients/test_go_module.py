"""The Go client as a module consumer gets it: a scratch module outside the source tree that
requires `github.com/smartpush-gateway/go` (one `replace` to this checkout, as with an unpublished
fork), resolves the rest through the module's own go.mod, and calls a running gateway: a send and
a decoded validation error.

This machine has no proxy.golang.org, so the dependencies come from a local GOPROXY serving
Debian's Go sources (tests/goproxy.py); the module graph and the build are Go's own."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from gateway.emulator import DEMO_TEMPLATE_ID
from tests.conftest import GatewayFactory
from tests.goproxy import debian_goproxy

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "clients/go/src/github.com/smartpush-gateway/go"

CONSUMER = """package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/smartpush-gateway/go/client"
	gatewayv1 "github.com/smartpush-gateway/go/smartpush/gateway/v1"
)

func main() {
	target, template := os.Args[1], os.Args[2]
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := client.Dial(ctx, target, client.Options{})
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	stub := gatewayv1.NewPushServiceClient(conn)
	request := &gatewayv1.SendRequest{
		ProjectId: "p", Sub: "u",
		Delivery: &gatewayv1.DeliveryConfig{
			DeliveryMode: gatewayv1.DeliveryMode_DELIVERY_MODE_BROADCAST,
			Destinations: []*gatewayv1.Destination{{Surface: gatewayv1.Surface_SURFACE_COMPANION}},
			TemplateContent: &gatewayv1.TemplateContent{Id: template},
		},
	}
	resp, err := stub.Send(ctx, request)
	if err != nil {
		panic(err)
	}
	fmt.Println(resp.GetResults()[0].GetStatusCode())
	request.Delivery.TemplateContent.Parameters = &gatewayv1.TemplateContent_MobileAppParameters{
		MobileAppParameters: &gatewayv1.MobileAppParameters{ButtonText: strings.Repeat("x", 31)},
	}
	_, err = stub.Send(ctx, request)
	gerr := client.Decode(err)
	if gerr == nil {
		panic("the over-long button text was accepted")
	}
	fmt.Println(gerr.Code, gerr.ReasonName, gerr.FieldViolations[0].Field)
}
"""


@pytest.mark.slow
async def test_a_module_consumer_builds_against_the_go_module_and_calls_the_gateway(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    assert shutil.which("go"), "Go is missing: run `make toolchains`"
    gw = await make_gateway()
    consumer = tmp_path / "consumer"
    consumer.mkdir()
    (consumer / "go.mod").write_text(
        "module example.com/consumer\n\ngo 1.19\n\n"
        "require github.com/smartpush-gateway/go v0.1.0\n\n"
        f"replace github.com/smartpush-gateway/go => {MODULE}\n"
    )
    (consumer / "main.go").write_text(CONSUMER)

    def go(*argv: str, proxy: str) -> str:
        env = {
            **os.environ,
            "GO111MODULE": "on",
            "GOPROXY": proxy,
            "GOSUMDB": "off",  # Debian's sources, not sum.golang.org's hashes
            "GOFLAGS": "-mod=mod",
            "GOPATH": str(tmp_path / "gopath"),
            "GOMODCACHE": str(tmp_path / "modcache"),
        }
        done = subprocess.run(["go", *argv], cwd=consumer, env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done.stdout

    with debian_goproxy() as proxy:
        await asyncio.to_thread(go, "mod", "tidy", proxy=proxy)
        out = await asyncio.to_thread(go, "run", ".", gw.address, DEMO_TEMPLATE_ID, proxy=proxy)
    gomod = (consumer / "go.mod").read_text()
    # One replace (this checkout); everything else came from the module's own requirements.
    assert gomod.count("=>") == 1
    assert "google.golang.org/grpc v1.33.3" in gomod
    assert out.split("\n")[:2] == [
        "0",
        "InvalidArgument ERROR_REASON_INVALID_REQUEST delivery.template_content.mobile_app_parameters.button_text",
    ]
    # The module cache is written read-only by Go; let pytest's tmp_path clean-up remove it.
    await asyncio.to_thread(subprocess.run, ["chmod", "-R", "u+w", str(tmp_path / "modcache")], check=False)
