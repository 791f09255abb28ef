"""The TypeScript client as a consumer gets it: `npm pack` from the repository, installed into a
scratch project outside the source tree, calling a running gateway (a send and a decoded error)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import tarfile
from pathlib import Path

import pytest

from gateway.emulator import DEMO_TEMPLATE_ID
from tests.conftest import GatewayFactory

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "clients" / "typescript"

CONSUMER = """
import assert from "node:assert/strict";
import {
  create, createGatewayClient, createServiceClient, decodeError, DeliveryMode, SendRequestSchema, Surface,
  TemplateService,
} from "@smartpush-gateway/client";

const [target, template] = process.argv.slice(2);
const request = (buttonText) => create(SendRequestSchema, {
  projectId: "p", sub: "u",
  delivery: {
    deliveryMode: DeliveryMode.BROADCAST,
    destinations: [{ surface: Surface.COMPANION }],
    templateContent: {
      id: template,
      parameters: buttonText ? { case: "mobileAppParameters", value: { buttonText } } : { case: undefined },
    },
  },
});
const client = createGatewayClient(`http://${target}`);
const sent = await client.send(request(), { timeoutMs: 10_000 });
console.log(sent.results[0].statusCode);
try {
  await client.send(request("x".repeat(31)), { timeoutMs: 10_000 });
} catch (err) {
  const e = decodeError(err);
  console.log(e.reasonName, e.fieldViolations[0].field);
}
const templates = createServiceClient(TemplateService, `http://${target}`);
assert.ok(Array.isArray((await templates.listTemplates({}, { timeoutMs: 10_000 })).templates));
console.log("templates ok");
"""


def _major(spec: str) -> int:
    """The major version of a `>=X[.Y.Z]` engines range."""
    assert spec.startswith(">="), spec
    return int(spec[2:].split(".")[0])


def _run(*argv: str | Path, cwd: Path) -> str:
    done = subprocess.run([str(a) for a in argv], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
async def test_the_packed_typescript_client_works_from_a_scratch_project(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gw = await make_gateway()
    packed = await asyncio.to_thread(_run, "npm", "pack", "--silent", "--pack-destination", tmp_path, cwd=PACKAGE)
    tarball = tmp_path / packed.strip().splitlines()[-1]
    with tarfile.open(tarball) as tar:
        names = set(tar.getnames())
    assert {"package/dist/src/index.js", "package/dist/src/index.d.ts", "package/LICENSE"} <= names
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert manifest["license"] == "Apache-2.0"
    # `engines` tells the truth: no dependency needs a newer Node than the package claims.
    floor = _major(manifest["engines"]["node"])
    for dep in manifest["dependencies"]:
        theirs = json.loads((PACKAGE / "node_modules" / dep / "package.json").read_text()).get("engines", {})
        if "node" in theirs:
            assert _major(theirs["node"]) <= floor, (dep, theirs["node"], manifest["engines"]["node"])
    scratch = tmp_path / "consumer"
    scratch.mkdir()
    (scratch / "package.json").write_text(json.dumps({"name": "consumer", "private": True, "type": "module"}))
    await asyncio.to_thread(_run, "npm", "install", "--no-audit", "--no-fund", "--loglevel=error", tarball, cwd=scratch)
    (scratch / "consumer.mjs").write_text(CONSUMER)
    out = await asyncio.to_thread(_run, "node", "consumer.mjs", gw.address, DEMO_TEMPLATE_ID, cwd=scratch)
    assert out.splitlines() == [
        "0",
        "ERROR_REASON_INVALID_REQUEST delivery.template_content.mobile_app_parameters.button_text",
        "templates ok",
    ]
