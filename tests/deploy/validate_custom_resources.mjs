// Validates CloudNativePG and KEDA custom resources without a cluster, with the validators that
// @kubernetes-models/cloudnative-pg and @kubernetes-models/keda generate from the operators' API
// types (tests/js/package.json pins them; their fields match CloudNativePG 1.29.0-1.29.1 and
// KEDA 2.19.0). Those validators check types, enums and required fields but let unknown fields
// through, as a cluster would silently prune them; so every object is also type-checked against
// the packages' TypeScript declarations, whose excess-property check refuses a field the API
// does not have (a misspelt one, say).
//
//   node tests/deploy/validate_custom_resources.mjs [objects.json]    (JSON array, or stdin)
//
// Prints {"results": [{"index", "apiVersion", "kind", "name", "errors": [...]}], "versions"}
// and exits 1 when any object has errors, 2 when the validators no longer catch known mistakes.

import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const jsDir = path.resolve(here, "../js");
const require = createRequire(path.join(jsDir, "package.json"));
// The packages export ES modules only; they are loaded from tests/js by file.
const load = (pkg, subpath) =>
  import(pathToFileURL(path.join(jsDir, "node_modules", pkg, `${subpath}.js`)).href);

const KINDS = {
  "postgresql.cnpg.io/v1": {
    pkg: "@kubernetes-models/cloudnative-pg",
    dir: "postgresql.cnpg.io/v1",
    kinds: ["Cluster", "Pooler", "ScheduledBackup"],
  },
  "keda.sh/v1alpha1": {
    pkg: "@kubernetes-models/keda",
    dir: "keda.sh/v1alpha1",
    kinds: ["ScaledObject", "TriggerAuthentication"],
  },
};

const VERSIONS = {
  "@kubernetes-models/cloudnative-pg": "CloudNativePG 1.29 API (fields of 1.29.0-1.29.1)",
  "@kubernetes-models/keda": "KEDA 2.19.0 API",
};

function family(object) {
  const entry = KINDS[object.apiVersion];
  if (!entry || !entry.kinds.includes(object.kind)) return null;
  return entry;
}

async function schemaErrors(object) {
  const entry = family(object);
  const module = await load(entry.pkg, `${entry.dir}/${object.kind}`);
  const Model = module[object.kind];
  try {
    new Model(object).validate();
    return [];
  } catch (error) {
    return String(error.message)
      .split(", ")
      .map((message) => `schema: ${message}`);
  }
}

// One in-memory TypeScript file declaring every object with its package's interface type.
function typeErrors(objects) {
  const ts = require("typescript");
  const file = path.join(jsDir, "__custom_resources__.ts");
  const imports = new Set();
  const ranges = [];
  let body = "";
  let line = 0;
  objects.forEach((object, index) => {
    const entry = family(object);
    const type = `I${object.kind}`;
    imports.add(`import type { ${type} } from "${entry.pkg}/${entry.dir}/${object.kind}";`);
    const literal = JSON.stringify(object, null, 2);
    const text = `export const object${index}: ${type} = ${literal};\n`;
    ranges.push({ index, first: line, last: line + text.split("\n").length - 2 });
    body += text;
    line += text.split("\n").length - 1;
  });
  const header = [...imports].join("\n") + "\n";
  const offset = header.split("\n").length - 1;
  const source = header + body;
  const options = {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, ...rest) =>
    path.resolve(name) === file
      ? ts.createSourceFile(name, source, version)
      : getSourceFile(name, version, ...rest);
  const fileExists = host.fileExists.bind(host);
  host.fileExists = (name) => path.resolve(name) === file || fileExists(name);
  const readFile = host.readFile.bind(host);
  host.readFile = (name) => (path.resolve(name) === file ? source : readFile(name));
  const program = ts.createProgram([file], options, host);
  const errors = new Map();
  for (const diagnostic of ts.getPreEmitDiagnostics(program)) {
    const message = ts.flattenDiagnosticMessageText(diagnostic.messageText, " ");
    let index = -1;
    if (diagnostic.file && path.resolve(diagnostic.file.fileName) === file) {
      const { line: at } = diagnostic.file.getLineAndCharacterOfPosition(diagnostic.start);
      const range = ranges.find((r) => at - offset >= r.first && at - offset <= r.last);
      if (range) index = range.index;
    }
    if (!errors.has(index)) errors.set(index, []);
    errors.get(index).push(`type: ${message}`);
  }
  return errors;
}

// The validators must still refuse what they are here to refuse.
async function selfTest() {
  const wrongType = {
    apiVersion: "postgresql.cnpg.io/v1",
    kind: "Cluster",
    metadata: { name: "wrong-type" },
    spec: { instances: "three", storage: { size: "1Gi" } },
  };
  const unknownField = {
    apiVersion: "keda.sh/v1alpha1",
    kind: "ScaledObject",
    metadata: { name: "unknown-field" },
    spec: { scaleTargetRef: { name: "w" }, triggers: [], minReplicaCountt: 1 },
  };
  const failures = [];
  if ((await schemaErrors(wrongType)).length === 0) {
    failures.push("the CloudNativePG validator accepted spec.instances: \"three\"");
  }
  const typed = typeErrors([unknownField]);
  if (!(typed.get(0) || []).some((m) => m.includes("minReplicaCountt"))) {
    failures.push("the type check accepted the unknown field spec.minReplicaCountt");
  }
  return failures;
}

async function main() {
  const input = process.argv[2] ? readFileSync(process.argv[2], "utf8") : readFileSync(0, "utf8");
  const objects = JSON.parse(input);
  const failures = await selfTest();
  if (failures.length > 0) {
    console.log(JSON.stringify({ selfTest: failures }, null, 2));
    process.exit(2);
  }
  const known = objects.filter((object) => family(object));
  const typed = typeErrors(known);
  const results = [];
  for (const [index, object] of objects.entries()) {
    const result = {
      index,
      apiVersion: object.apiVersion,
      kind: object.kind,
      name: object.metadata?.name,
      errors: [],
    };
    if (!family(object)) {
      result.errors.push(`no validator for ${object.apiVersion} ${object.kind}`);
    } else {
      result.errors.push(...(await schemaErrors(object)));
      result.errors.push(...(typed.get(known.indexOf(object)) || []));
    }
    results.push(result);
  }
  for (const message of typed.get(-1) || []) {
    results.push({ index: -1, kind: "(type check)", errors: [message] });
  }
  console.log(JSON.stringify({ results, versions: VERSIONS }, null, 2));
  process.exit(results.some((r) => r.errors.length > 0) ? 1 : 0);
}

await main();
