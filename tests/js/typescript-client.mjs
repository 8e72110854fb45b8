// Generates the TypeScript client an integrator would make from Orion's OpenAPI document and
// type-checks it, with the code in client-usage.ts that uses it, under `tsc --strict`.
//
//   node typescript-client.mjs <openapi.json> [--keep]
//
// The client is the fetch SDK of @hey-api/openapi-ts (types, one function per operation, its
// fetch client), written into a fresh temporary folder as `client/` beside a copy of
// client-usage.ts, and compiled with the options of tsconfig.client.json. It prints the
// generator's warnings and the compiler's diagnostics, and exits non-zero if either step failed.
// `--keep` leaves the temporary folder in place and prints where it is.

import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { createClient } from "@hey-api/openapi-ts";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const keep = args.includes("--keep");
const documentPath = args.find((arg) => !arg.startsWith("--"));
if (!documentPath) {
  console.error("usage: node typescript-client.mjs <openapi.json> [--keep]");
  process.exit(2);
}

const tsconfig = join(here, "tsconfig.client.json");
const workDir = mkdtempSync(join(tmpdir(), "orion-ts-client-"));
let status = 1;
try {
  status = await generateAndCheck(resolve(documentPath), workDir);
} catch (error) {
  console.error(`generating the TypeScript client failed: ${error?.stack ?? error}`);
  status = 1;
} finally {
  if (keep) {
    console.log(`kept ${workDir}`);
  } else {
    rmSync(workDir, { recursive: true, force: true });
  }
}
process.exit(status);

async function generateAndCheck(document, dir) {
  await createClient({
    input: document,
    output: {
      path: join(dir, "client"),
      // Node's own ES modules need the extension in every relative import.
      module: { extension: ".js" },
      tsConfigPath: tsconfig,
    },
    plugins: ["@hey-api/client-fetch", "@hey-api/typescript", "@hey-api/sdk"],
    logs: { level: "warn", file: false },
  });

  copyFileSync(join(here, "client-usage.ts"), join(dir, "client-usage.ts"));
  // As in an integrator's package: `.ts` files are ES modules.
  writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module", private: true }));
  writeFileSync(
    join(dir, "tsconfig.json"),
    JSON.stringify({ extends: tsconfig, include: ["client-usage.ts", "client/**/*.ts"] }, null, 2),
  );

  const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
  const compiled = spawnSync(
    process.execPath,
    [tsc, "--project", join(dir, "tsconfig.json"), "--strict", "--noEmit", "--pretty", "false"],
    { cwd: dir, encoding: "utf8" },
  );
  const output = `${compiled.stdout ?? ""}${compiled.stderr ?? ""}`.trim();
  if (compiled.error) {
    console.error(`could not run tsc: ${compiled.error.message}`);
    return 1;
  }
  if (compiled.status !== 0) {
    console.error(`tsc --strict found errors in the generated client or its use:\n${output}`);
    return 1;
  }
  if (output) {
    console.log(output);
  }
  console.log("tsc --strict: the generated client and client-usage.ts type-check");
  return 0;
}
