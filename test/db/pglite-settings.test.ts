import { describe, expect, it } from "vitest";
import { patchSharedBuffers } from "../../src/db/pglite-settings.js";

describe("patchSharedBuffers", () => {
  const wasm = Buffer.concat([Buffer.from("\0\0temp_buffers=8MB\0"), Buffer.from("shared_buffers=128MB\0"), Buffer.from("work_mem=4MB\0")]);

  it("rewrites the one compiled-in literal in place, NUL-padded to its length", () => {
    const bytes = Buffer.from(wasm);
    expect(patchSharedBuffers(bytes, "16MB")).toBe(bytes);
    expect(bytes.toString("latin1")).toBe("\0\0temp_buffers=8MB\0shared_buffers=16MB\0\0work_mem=4MB\0");
  });

  it("leaves a build without it, or with it twice, alone", () => {
    expect(patchSharedBuffers(Buffer.from("work_mem=4MB\0"), "16MB")).toBeUndefined();
    const twice = Buffer.concat([wasm, wasm]);
    expect(patchSharedBuffers(twice, "16MB")).toBeUndefined();
    expect(twice).toEqual(Buffer.concat([wasm, wasm]));
  });

  it("takes only a size that fits in place", () => {
    expect(() => patchSharedBuffers(wasm, "1024MB")).toThrow(/at most 5 characters/);
    expect(() => patchSharedBuffers(wasm, "16MB; x")).toThrow(/a size such as 16MB/);
  });
});
