// Send one push through a running gateway: `npm run example -- 127.0.0.1:50051`.
import { createGatewayClient, decodeError, DeliveryMode, Surface } from "../src/index.js";

const target = process.argv[2] ?? "127.0.0.1:50051";
const client = createGatewayClient(`http://${target}`);
try {
  const response = await client.send(
    {
      projectId: "demo-project",
      sub: "demo-user",
      delivery: {
        deliveryMode: DeliveryMode.BROADCAST,
        destinations: [{ surface: Surface.COMPANION }],
        templateContent: { id: "49061553-27c7-4471-9145-d8d6137c57da" },
      },
    },
    { timeoutMs: 10_000 },
  );
  for (const r of response.results) console.log(Surface[r.surface], r.statusCode, r.description);
} catch (err) {
  const e = decodeError(err);
  console.error(e.reasonName, e.message, e.fieldViolations, e.rqUid);
  process.exitCode = 1;
}
