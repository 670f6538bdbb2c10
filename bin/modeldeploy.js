#!/usr/bin/env node
// Thin launcher: the CLI is compiled to dist/ by `npm run build`.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
const entry = new URL("../dist/bin/modeldeploy.js", import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  console.error("modeldeploy is not built yet: run `npm run build` first.");
  process.exit(1);
}
await import(entry.href);
