// Checks an AsyncAPI document with the official parser, and hub messages against it.
//
//   node asyncapi-check.mjs <file or http(s) URL>
//       Parses and validates the document (the AsyncAPI schema and the parser's rules) and prints
//       every diagnostic; exits 1 if any is an error.
//   node asyncapi-check.mjs <document> --message <name> --payload <json | ->
//       Also validates one message payload (a whole record without its 0x1E separator, such as
//       {"type":1,"target":"OrderStatusUpdated","arguments":[{...}]}) against that message's
//       payload schema; `-` reads it from stdin. Exits 1 if it does not conform.
//   node asyncapi-check.mjs <document> --message <name> --argument <json | ->
//       The same for the single argument of an invocation (what a SignalR client's handler
//       receives): checked against the schema of the payload's `arguments` item.
//   node asyncapi-check.mjs <document> --hub-messages <file | ->
//       The same for many arguments at once: JSON lines (or one JSON array) of
//       {"target": "<message name>", "data": {<argument>}}, as hub-probe.mjs reports what it hears;
//       lines of other shapes are skipped. Exits 1 if any does not conform.
//
// It ends with one line `asyncapi-check: ...` saying what passed or failed. The functions are
// exported too, for other scripts.

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

import { DiagnosticSeverity, Parser, fromFile, fromURL } from "@asyncapi/parser";
import Ajv from "ajv";
import addFormats from "ajv-formats";

const SEVERITY = {
  [DiagnosticSeverity.Error]: "error",
  [DiagnosticSeverity.Warning]: "warning",
  [DiagnosticSeverity.Information]: "info",
  [DiagnosticSeverity.Hint]: "hint",
};

/** Parses and validates the document at `source` (a path or an http(s) URL). */
export async function parseDocument(source) {
  const parser = new Parser();
  const input = /^https?:\/\//.test(source)
    ? fromURL(parser, source)
    : fromFile(parser, resolve(source));
  const { document, diagnostics } = await input.parse();
  return { document, diagnostics };
}

/** One line per diagnostic: severity, path in the document, rule and message. */
export function formatDiagnostic(diagnostic) {
  const where = diagnostic.path?.length ? diagnostic.path.join(".") : "(document)";
  const severity = SEVERITY[diagnostic.severity] ?? `severity ${diagnostic.severity}`;
  return `${severity} ${where} [${diagnostic.code}] ${diagnostic.message}`;
}

/** The message called `name` (its name or its key under components.messages). */
export function findMessage(document, name) {
  const messages = document.allMessages().all();
  const found =
    messages.find((message) => message.name() === name) ??
    messages.find((message) => message.id() === name);
  if (!found) {
    const known = [...new Set(messages.map((m) => m.name() ?? m.id()))].join(", ");
    throw new Error(`the document has no message ${name}; it has: ${known}`);
  }
  return found;
}

/** The JSON schema of the message's payload, or of its invocation's single argument. */
export function messageSchema(message, { argument = false } = {}) {
  if (!message.hasPayload()) {
    throw new Error(`message ${message.name() ?? message.id()} has no payload`);
  }
  const payload = message.payload().json();
  if (!argument) {
    return payload;
  }
  const items = payload?.properties?.arguments?.items;
  const schema = Array.isArray(items) ? items[0] : items;
  if (!schema) {
    throw new Error(`message ${message.name() ?? message.id()} is not an invocation with an argument`);
  }
  return schema;
}

/** Validates `value` against `schema`; returns the errors, empty when it conforms. */
export function validate(schema, value) {
  // The parser's schemas carry its own `x-parser-*` annotations: unknown keywords are allowed.
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  const check = ajv.compile(schema);
  if (check(value)) {
    return [];
  }
  return check.errors.map((e) => `${e.instancePath || "(root)"} ${e.message} ${JSON.stringify(e.params)}`);
}

/** Every way in which a message's examples do not conform to its payload schema. */
export function exampleProblems(document) {
  const problems = [];
  for (const message of document.allMessages().all()) {
    if (!message.hasPayload()) {
      continue;
    }
    const schema = message.payload().json();
    message.examples().all().forEach((example, index) => {
      if (!example.hasPayload()) {
        return;
      }
      for (const problem of validate(schema, example.payload())) {
        const label = example.name() ?? `#${index}`;
        problems.push(`message ${message.name() ?? message.id()}, example ${label}: ${problem}`);
      }
    });
  }
  return problems;
}

/** The text given with option `name`: stdin for `-`, else the value itself, or with `file` the
 * content of the file it names. */
function option(args, name, { file = false } = {}) {
  const at = args.indexOf(name);
  if (at === -1) {
    return undefined;
  }
  const value = args[at + 1];
  if (value === undefined) {
    throw new Error(`${name} needs a value`);
  }
  if (value === "-") {
    return readFileSync(0, "utf8");
  }
  return file ? readFileSync(value, "utf8") : value;
}

/** Reads `{"target", "data"}` records (JSON lines or an array) from `text`. */
function hubRecords(text) {
  const trimmed = text.trim();
  const values = trimmed.startsWith("[")
    ? JSON.parse(trimmed)
    : trimmed
        .split("\n")
        .filter((line) => line.trim() !== "")
        .map((line) => JSON.parse(line));
  return values.filter((v) => typeof v?.target === "string" && v.data !== undefined);
}

function checkHubMessages(document, text) {
  const records = hubRecords(text);
  const validators = new Map();
  let invalid = 0;
  for (const [index, record] of records.entries()) {
    if (!validators.has(record.target)) {
      validators.set(record.target, messageSchema(findMessage(document, record.target), { argument: true }));
    }
    const problems = validate(validators.get(record.target), record.data);
    for (const problem of problems) {
      console.log(`invalid ${record.target} (record ${index}): ${problem} in ${JSON.stringify(record.data)}`);
    }
    invalid += problems.length > 0 ? 1 : 0;
  }
  const targets = [...new Set(records.map((r) => r.target))].sort().join(", ");
  if (invalid > 0) {
    console.log(`asyncapi-check: ${invalid} of ${records.length} hub messages do not conform (${targets})`);
    return 1;
  }
  console.log(`asyncapi-check: ${records.length} hub messages conform (${targets})`);
  return 0;
}

async function main(args) {
  const source = args[0];
  if (!source || source.startsWith("--")) {
    console.error(
      "usage: node asyncapi-check.mjs <file or URL> " +
        "[--message <name> (--payload | --argument) <json | ->] [--hub-messages <file | ->]",
    );
    return 2;
  }
  const hubMessages = option(args, "--hub-messages", { file: true });
  const messageName = option(args, "--message");
  const payloadText = option(args, "--payload");
  const argumentText = option(args, "--argument");

  const { document, diagnostics } = await parseDocument(source);
  for (const diagnostic of diagnostics) {
    console.log(formatDiagnostic(diagnostic));
  }
  let errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error).length;
  if (document) {
    // The parser does not hold a message's examples to its payload schema; integrators copy them.
    for (const problem of exampleProblems(document)) {
      console.log(`error ${problem}`);
      errors += 1;
    }
  }
  if (errors > 0 || !document) {
    console.log(`asyncapi-check: ${source} is not a valid AsyncAPI document (${errors} errors)`);
    return 1;
  }
  const version = document.version();
  const warnings = diagnostics.length - errors;
  if (hubMessages !== undefined) {
    return checkHubMessages(document, hubMessages);
  }
  if (messageName === undefined) {
    console.log(
      `asyncapi-check: ${source} is a valid AsyncAPI ${version} document (0 errors, ${warnings} other diagnostics)`,
    );
    return 0;
  }
  const text = argumentText ?? payloadText;
  if (text === undefined) {
    throw new Error("--message needs --payload or --argument");
  }
  const value = JSON.parse(text.replace(/\u001e\s*$/, ""));
  const schema = messageSchema(findMessage(document, messageName), {
    argument: argumentText !== undefined,
  });
  const what = argumentText !== undefined ? "argument" : "payload";
  const problems = validate(schema, value);
  for (const problem of problems) {
    console.log(`invalid ${what}: ${problem}`);
  }
  if (problems.length > 0) {
    console.log(`asyncapi-check: the ${what} does not conform to message ${messageName}`);
    return 1;
  }
  console.log(`asyncapi-check: the ${what} conforms to message ${messageName}`);
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (error) => {
      console.log(`asyncapi-check: ${error?.message ?? error}`);
      process.exit(1);
    },
  );
}
