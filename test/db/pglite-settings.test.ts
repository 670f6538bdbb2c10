import { describe, expect, it } from "vitest";
import { patchSharedBuffers } from "../../src/db/pglite-settings.js";

describe("patchSharedBuffers", () => {
  const wasm = Buffer.concat([Buffer.from("\0\0temp_buffers=8MB\0"), Buffer.from("shared_buffers=128MB\0"), Buffer.from("work_mem=4MB\0")]);

  it("rewrites the one compiled-in literal, NUL-padded to its length", () => {
    const patched = patchSharedBuffers(wasm, "16MB")!;
    expect(patched.length).toBe(wasm.length);
    expect(patched.toString("latin1")).toBe("\0\0temp_buffers=8MB\0shared_buffers=16MB\0\0work_mem=4MB\0");
    expect(wasm.toString("latin1")).toContain("shared_buffers=128MB"); // the input is left as it was
  });

  it("leaves a build without it, or with it twice, alone", () => {
    expect(patchSharedBuffers(Buffer.from("work_mem=4MB\0"), "16MB")).toBeUndefined();
    expect(patchSharedBuffers(Buffer.concat([wasm, wasm]), "16MB")).toBeUndefined();
  });

  it("takes only a size that fits in place", () => {
    expect(() => patchSharedBuffers(wasm, "1024MB")).toThrow(/at most 5 characters/);
    expect(() => patchSharedBuffers(wasm, "16MB; x")).toThrow(/a size such as 16MB/);
  });
});
