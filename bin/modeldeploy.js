#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build`.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
// Checked before anything loads: older versions fail later with obscure errors.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  console.error(`modeldeploy needs Node.js 20.19 or later; this is ${process.version}.`);
  process.exit(1);
}
const entry = new URL("../dist/bin/modeldeploy.js", import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error("modeldeploy is not built yet: run `npm run build` first.");
  process.exit(1);
}
await import(entry.href);
