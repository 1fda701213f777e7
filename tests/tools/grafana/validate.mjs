// Checks Grafana dashboard JSON files against the JSON Schema that tests/scripts/tools.sh
// generated from Grafana's own `Dashboard` type (@grafana/schema, raw/dashboard). Prints
// `FILE: valid`, or each violation as `FILE: /json/pointer message {params}`, and exits 1 on
// any violation.
//
//   node validate.mjs TOOLS_DIR SCHEMA.json DASHBOARD.json...
//
// TOOLS_DIR is where tools.sh ran `npm ci` ($AIRLOCK_CACHE/grafana): ajv is loaded from
// there, not from this checkout.
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { join } from "node:path";

const [toolsDir, schemaFile, ...files] = process.argv.slice(2);
if (!toolsDir || !schemaFile || files.length === 0) {
  console.error("usage: node validate.mjs TOOLS_DIR SCHEMA.json DASHBOARD.json...");
  process.exit(2);
}
const require = createRequire(join(toolsDir, "package.json"));
const Ajv = require("ajv");
const addFormats = require("ajv-formats");

const ajv = new Ajv({ allErrors: true });
addFormats(ajv);
const validate = ajv.compile(JSON.parse(readFileSync(schemaFile, "utf8")));
let invalid = 0;
for (const file of files) {
  const dashboard = JSON.parse(readFileSync(file, "utf8"));
  if (validate(dashboard)) {
    console.log(`${file}: valid`);
    continue;
  }
  invalid++;
  for (const e of validate.errors) {
    console.log(`${file}: ${e.instancePath || "/"} ${e.message} ${JSON.stringify(e.params)}`);
  }
}
process.exit(invalid ? 1 : 0);
