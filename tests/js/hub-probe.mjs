// A client of the order hub built with the real @microsoft/signalr package, driven by a test.
//
//   node hub-probe.mjs <hub url>        (the access token, if any, in ORION_TOKEN)
//
// It writes one JSON line per happening to stdout: {"event":"connected"}, {"event":"refused",
// "error"}, {"event":"message","target","data"}, {"event":"result"|"error","id",...} and
// {"event":"closed","error"}. It reads commands from stdin, one JSON object per line:
// {"invoke": "Method", "args": [...], "id": 1} and {"stop": true}. Stdin closing stops it too.

import * as signalR from "@microsoft/signalr";
import { createInterface } from "node:readline";

const url = process.argv[2];
const token = process.env.ORION_TOKEN;
const targets = ["OrderStatusUpdated", "OrderPlaced", "InventoryUpdated", "LowStockAlert"];

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

const builder = new signalR.HubConnectionBuilder()
  .withUrl(url, {
    transport: signalR.HttpTransportType.WebSockets,
    ...(token ? { accessTokenFactory: () => token } : {}),
  })
  .configureLogging(signalR.LogLevel.None);
const connection = builder.build();

for (const target of targets) {
  connection.on(target, (data) => emit({ event: "message", target, data }));
}

let finished = false;
function finish(code) {
  if (!finished) {
    finished = true;
    // Let stdout drain before leaving.
    process.stdout.write("", () => process.exit(code));
  }
}

connection.onclose((error) => {
  emit({ event: "closed", error: error ? String(error.message ?? error) : null });
  finish(0);
});

try {
  await connection.start();
  emit({ event: "connected", connectionId: connection.connectionId });
} catch (error) {
  emit({ event: "refused", error: String(error.message ?? error), status: error.statusCode ?? null });
  finish(0);
}

const commands = createInterface({ input: process.stdin });
commands.on("line", async (line) => {
  let command;
  try {
    command = JSON.parse(line);
  } catch {
    return;
  }
  if (command.stop) {
    await connection.stop();
    return;
  }
  if (command.invoke) {
    try {
      const result = await connection.invoke(command.invoke, ...(command.args ?? []));
      emit({ event: "result", id: command.id, result: result ?? null });
    } catch (error) {
      emit({ event: "error", id: command.id, error: String(error.message ?? error) });
    }
  }
});
commands.on("close", async () => {
  await connection.stop();
});
