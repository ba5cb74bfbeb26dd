// The client's copy of the field rules (checkFields in src/rows.ts, used before a multi-row call sends
// anything) against clients/conformance/fields/values.json, which tests/client/test_field_rules.py
// holds to the daemon's own rules: a rule changed on one side only fails one of the two.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { checkFields } from "../dist/rows.js";

const VALUES = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "conformance", "fields", "values.json");

function expand(value) {
  const long = value !== null && typeof value === "object" && !Array.isArray(value);
  return long && Object.keys(value).sort().join() === "repeat,times" ? value.repeat.repeat(value.times) : value;
}

function clientTakes(table, field, value) {
  try {
    checkFields(table, { [field]: value }, "row");
  } catch (error) {
    if (!(error instanceof TypeError)) throw error;
    return false;
  }
  return true;
}

test("the client takes and refuses the field values the daemon does", () => {
  const entries = JSON.parse(readFileSync(VALUES, "utf8"));
  assert.ok(entries.length > 500, "the file lists the values for every editable field");
  const differ = entries
    .filter(({ table, field, value, ok }) => clientTakes(table, field, expand(value)) !== ok)
    .map(({ table, field, value, ok }) => `${table}.${field} = ${JSON.stringify(value).slice(0, 60)}: daemon ${ok ? "takes" : "refuses"} it`);
  assert.deepEqual(differ, []);
});
