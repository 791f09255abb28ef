// Smoke test against a gateway started with the emulator; tests/clients sets GATEWAY_TARGET.
import assert from "node:assert/strict";
import { test } from "node:test";

import { create } from "@bufbuild/protobuf";

import {
  Code,
  createGatewayClient,
  decodeError,
  DeliveryMode,
  ErrorReason,
  SendRequestSchema,
  Surface,
} from "../src/index.js";

const target = process.env.GATEWAY_TARGET;
const DEMO_TEMPLATE = "49061553-27c7-4471-9145-d8d6137c57da";

function request(surfaces: Surface[], buttonText?: string) {
  return create(SendRequestSchema, {
    projectId: "ts-smoke-project",
    sub: "ts-smoke-user",
    delivery: {
      deliveryMode: DeliveryMode.BROADCAST,
      destinations: surfaces.map((surface) => ({ surface })),
      templateContent: {
        id: DEMO_TEMPLATE,
        parameters:
          buttonText === undefined
            ? { case: undefined }
            : { case: "mobileAppParameters", value: { buttonText } },
      },
    },
  });
}

test("send through the gateway and decode a rejected request", { skip: !target }, async () => {
  const client = createGatewayClient(`http://${target}`);
  const response = await client.send(request([Surface.COMPANION, Surface.SBERBOX]), { timeoutMs: 10_000 });
  assert.equal(response.rqUid.length, 36);
  assert.deepEqual(
    response.results.map((r) => [r.surface, r.statusCode, r.reported]),
    [
      [Surface.COMPANION, 0, true],
      [Surface.SBERBOX, 0, true],
    ],
  );

  const bad = request([Surface.COMPANION], "x".repeat(31));
  await assert.rejects(client.send(bad, { timeoutMs: 10_000 }), (err: unknown) => {
    const e = decodeError(err);
    assert.equal(e.code, Code.InvalidArgument);
    assert.equal(e.reason, ErrorReason.INVALID_REQUEST);
    assert.equal(e.reasonName, "ERROR_REASON_INVALID_REQUEST");
    assert.equal(e.domain, "smartpush.gateway");
    assert.ok(e.rqUid);
    assert.deepEqual(
      e.fieldViolations.map((v) => v.field),
      ["delivery.template_content.mobile_app_parameters.button_text"],
    );
    return true;
  });
});
