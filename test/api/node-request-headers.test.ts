// The fast path's request headers (read from Node's until more is asked)
// answer as the Headers connect-node builds from the same request.
import type { IncomingHttpHeaders } from "node:http";
import { describe, expect, it } from "vitest";
import { nodeRequestHeaders } from "../../src/api/node-request-headers.js";
import { webHeaders } from "../../src/api/universal-request.js";

const sample = (): IncomingHttpHeaders => ({
  host: "127.0.0.1:8080",
  "content-type": "application/json",
  authorization: "Bearer abc",
  "x-request-id": "req-1",
  "set-cookie": ["a=1", "b=2"],
  cookie: "x=1; y=2",
  "x-empty": "",
  accept: "a/b, c/d",
});

describe("nodeRequestHeaders", () => {
  it("answers get and has as a Headers built from the same headers", () => {
    const lazy = nodeRequestHeaders(sample());
    const built = webHeaders(sample());
    for (const name of ["Authorization", "x-request-id", "set-cookie", "cookie", "x-empty", "accept", "missing", "HOST", "Content-Type"]) {
      expect(lazy.get(name)).toBe(built.get(name));
      expect(lazy.has(name)).toBe(built.has(name));
    }
    expect(lazy).toBeInstanceOf(Headers);
  });

  it("is a full Headers once anything else is asked of it", () => {
    const lazy = nodeRequestHeaders(sample());
    const built = webHeaders(sample());
    expect([...lazy]).toEqual([...built]);
    expect(lazy.getSetCookie()).toEqual(built.getSetCookie());
    const seen = (h: Headers) => {
      const out: string[] = [];
      h.forEach((v, k) => out.push(`${k}=${v}`));
      return out;
    };
    expect(seen(nodeRequestHeaders(sample()))).toEqual(seen(built));
    expect([...nodeRequestHeaders(sample()).keys()]).toEqual([...built.keys()]);
    expect([...nodeRequestHeaders(sample()).values()]).toEqual([...built.values()]);
    expect([...nodeRequestHeaders(sample()).entries()]).toEqual([...built.entries()]);
    expect(Object.fromEntries(new Headers(nodeRequestHeaders(sample())))).toEqual(Object.fromEntries(built));
  });

  it("takes changes as a Headers does", () => {
    const lazy = nodeRequestHeaders(sample());
    lazy.set("authorization", "Bearer other");
    lazy.delete("x-request-id");
    lazy.append("accept", "e/f");
    expect(lazy.get("authorization")).toBe("Bearer other");
    expect(lazy.has("x-request-id")).toBe(false);
    expect(lazy.get("accept")).toBe("a/b, c/d, e/f");
    expect(lazy.get("content-type")).toBe("application/json");
  });

  it("throws on an invalid name, as a Headers does", () => {
    expect(() => webHeaders(sample()).get("bad name")).toThrow(TypeError);
    expect(() => nodeRequestHeaders(sample()).get("bad name")).toThrow(TypeError);
    expect(() => nodeRequestHeaders(sample()).has("bad name")).toThrow(TypeError);
  });
});
