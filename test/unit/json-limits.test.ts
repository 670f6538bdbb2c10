// The JSON depth scanner and the body formats the request guard recognises.
import { describe, expect, it } from "vitest";
import { JsonDepthScanner, jsonTooDeep } from "../../src/api/json-limits.js";
import { bodyFormatOf, requestCompression } from "../../src/api/request-guard.js";

const bytes = (s: string) => Buffer.from(s, "utf8");

describe("JsonDepthScanner", () => {
  it("counts nesting of arrays and objects up to the limit", () => {
    expect(jsonTooDeep(bytes("[[[]]]"), 3)).toBe(false);
    expect(jsonTooDeep(bytes("[[[[]]]]"), 3)).toBe(true);
    expect(jsonTooDeep(bytes('{"a":{"b":[1,{"c":[]}]}}'), 5)).toBe(false);
    expect(jsonTooDeep(bytes('{"a":{"b":[1,{"c":[]}]}}'), 4)).toBe(true);
    // Siblings do not add up: depth, not count.
    expect(jsonTooDeep(bytes(`[${"[],".repeat(10_000)}[]]`), 2)).toBe(false);
  });

  it("ignores brackets inside strings, escaped quotes included", () => {
    expect(jsonTooDeep(bytes('{"name":"[[[[[[[[[[{{{{{{{{"}'), 1)).toBe(false);
    expect(jsonTooDeep(bytes('{"name":"a\\"[[[[[[[[\\\\"}'), 1)).toBe(false);
    // After an escaped backslash the quote does close the string.
    expect(jsonTooDeep(bytes('["\\\\",[[]]]'), 2)).toBe(true);
    // Multi-byte UTF-8 never looks like a bracket or a quote.
    expect(jsonTooDeep(bytes('{"name":"ā[ƀ]“”"}'), 1)).toBe(false);
  });

  it("keeps its state across chunk boundaries, even inside an escape", () => {
    const doc = bytes('{"a":"x\\"[[[[","b":[[[[1]]]]}');
    for (let cut = 1; cut < doc.length; cut++) {
      const s = new JsonDepthScanner(4);
      const ok = s.push(doc.subarray(0, cut)) && s.push(doc.subarray(cut));
      expect(ok, `cut at ${cut}`).toBe(false);
      const t = new JsonDepthScanner(5);
      expect(t.push(doc.subarray(0, cut)) && t.push(doc.subarray(cut)), `cut at ${cut}`).toBe(true);
    }
  });

  it("stops at the first bracket past the limit and stays refused", () => {
    const s = new JsonDepthScanner(64);
    expect(s.push(bytes("[".repeat(64)))).toBe(true);
    expect(s.push(bytes("["))).toBe(false);
    expect(s.push(bytes("]]]"))).toBe(false);
  });

  it("scans a 4 MB document in one linear pass", () => {
    const big = bytes(`{"name":"${"x".repeat(4 * 1024 * 1024)}"}`);
    const t0 = performance.now();
    expect(jsonTooDeep(big, 64)).toBe(false);
    // Generous: linear work of a few milliseconds (JSON.parse of a deep 3.8 MB body took ~0.8 s).
    expect(performance.now() - t0).toBeLessThan(2000);
  });
});

describe("request formats", () => {
  it("recognises every content type connect-node parses", () => {
    expect(bodyFormatOf("application/json")).toMatchObject({ protocol: "connect", json: true, enveloped: false });
    expect(bodyFormatOf("application/json; charset=utf-8")).toMatchObject({ json: true, enveloped: false });
    expect(bodyFormatOf("application/proto")).toMatchObject({ protocol: "connect", json: false, enveloped: false });
    expect(bodyFormatOf("application/connect+json")).toMatchObject({ protocol: "connect", json: true, enveloped: true, endFlag: 0b10 });
    expect(bodyFormatOf("application/connect+proto")).toMatchObject({ json: false, enveloped: true });
    expect(bodyFormatOf("application/grpc")).toMatchObject({ protocol: "grpc", json: false, enveloped: true });
    expect(bodyFormatOf("application/grpc+json")).toMatchObject({ protocol: "grpc", json: true });
    expect(bodyFormatOf("application/grpc+proto")).toMatchObject({ protocol: "grpc", json: false });
    expect(bodyFormatOf("application/grpc-web")).toMatchObject({ protocol: "grpc-web", json: false, endFlag: 0x80 });
    expect(bodyFormatOf("application/grpc-web+json")).toMatchObject({ protocol: "grpc-web", json: true });
    expect(bodyFormatOf("APPLICATION/JSON")).toMatchObject({ json: true });
    expect(bodyFormatOf("text/plain")).toBeUndefined();
    expect(bodyFormatOf(null)).toBeUndefined();
  });

  it("knows gzip and br; unknown encodings are left to connect-node", () => {
    expect(requestCompression(null)).toBeNull();
    expect(requestCompression("identity")).toBeNull();
    expect(requestCompression("gzip")?.name).toBe("gzip");
    expect(requestCompression("br")?.name).toBe("br");
    expect(requestCompression("zstd")).toBeUndefined();
  });
});
