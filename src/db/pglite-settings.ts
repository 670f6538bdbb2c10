// PGlite 0.3 starts Postgres with settings compiled into its WASM
// (`-c shared_buffers=128MB`, among others) and reads no postgresql.conf, so
// the 128 MB buffer pool (zeroed at start, so resident) cannot be set from
// outside. The compiled module is patched instead: the one literal
// `shared_buffers=128MB` in its data is rewritten before compiling, and the
// patched module is handed to PGlite through its `wasmModule` option.
// Measured with the embedded default and one deployment: the PGlite child's
// idle RSS falls by ~120 MB (128 -> 8 MB of buffers, and less WASM memory
// around them), and its queries take as long: the control plane's tables are
// a few MB, and a page not in the pool is one read from the OS's file cache.
import fs from "node:fs";
import type { PGliteOptions } from "@electric-sql/pglite";

type WasmModule = NonNullable<PGliteOptions["wasmModule"]>;
// The WebAssembly global is not in this project's lib (ES2023, no DOM).
declare const WebAssembly: { compile(bytes: Uint8Array): Promise<WasmModule> };

export const EMBEDDED_SHARED_BUFFERS = "8MB";

const COMPILED_SETTING = "shared_buffers=128MB";

export interface PatchedWasm {
  module: WasmModule;
  /** The value now compiled in, e.g. "16MB". */
  sharedBuffers: string;
}

/**
 * Replaces the compiled-in `shared_buffers=128MB` in `wasm` (in place: no
 * second 9 MB copy) by `shared_buffers=<value>` and returns it, or returns
 * undefined, changing nothing, when that literal is not there exactly once
 * (another PGlite build: it is then used as it is).
 */
export function patchSharedBuffers(wasm: Buffer, value: string): Buffer | undefined {
  const from = Buffer.from(`${COMPILED_SETTING}\0`);
  const replacement = Buffer.from(`shared_buffers=${value}\0`);
  if (!/^\d+(kB|MB)$/.test(value) || replacement.length > from.length) throw new Error(`shared_buffers ${value}: a size such as 16MB, at most 5 characters`);
  const at = wasm.indexOf(from);
  if (at < 0 || wasm.indexOf(from, at + 1) >= 0) return undefined;
  // NUL-padded to the old length: the C string ends at the first NUL.
  wasm.fill(0, at, at + from.length);
  replacement.copy(wasm, at);
  return wasm;
}

/** PGlite's WASM compiled with a smaller buffer pool; undefined when it cannot be patched. */
export async function compileLeanPGlite(value = EMBEDDED_SHARED_BUFFERS): Promise<PatchedWasm | undefined> {
  const file = new URL("./pglite.wasm", import.meta.resolve("@electric-sql/pglite"));
  const patched = patchSharedBuffers(fs.readFileSync(file), value);
  if (patched === undefined) return undefined;
  return { module: await WebAssembly.compile(patched), sharedBuffers: value };
}
