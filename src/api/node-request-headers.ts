// A handler context's request headers for the unary fast path: a fetch
// Headers that answers get/has straight from Node's parsed headers, and
// copies them in (as webHeaders does for connect-node) the first time
// anything else is asked of it. Building a Headers validates, stores and
// later sorts every header (~1 KB and a few µs per call); most calls read one
// or two (authorization, x-request-id).
import type { IncomingHttpHeaders } from "node:http";

/** A header name get/has may look up directly; anything else goes through Headers (and its errors). */
const token = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const node = Symbol("node headers");

class NodeRequestHeaders extends Headers {
  [node]: IncomingHttpHeaders | undefined;

  constructor(headers: IncomingHttpHeaders) {
    super();
    this[node] = headers;
  }
}

const base = Headers.prototype as unknown as Record<PropertyKey, (...args: unknown[]) => unknown>;

/** Copies Node's headers in, once; from then on the object is a plain Headers. */
function fill(h: NodeRequestHeaders): void {
  const headers = h[node];
  if (headers === undefined) return;
  h[node] = undefined;
  for (const k in headers) {
    if (k.charCodeAt(0) === 58 /* ":" pseudo-header */) continue;
    const v = headers[k];
    if (v === undefined) continue;
    if (typeof v === "string") h.append(k, v);
    else for (const e of v) h.append(k, e);
  }
}

function get(this: NodeRequestHeaders, name: string): string | null {
  const headers = this[node];
  if (headers !== undefined && token.test(name)) {
    const v = headers[name.toLowerCase()];
    // Headers joins repeated values with ", " (Node has joined all but set-cookie already).
    return v === undefined ? null : typeof v === "string" ? v : v.length === 0 ? null : v.join(", ");
  }
  fill(this);
  return base["get"]!.call(this, name) as string | null;
}

const methods: PropertyDescriptorMap = {
  get: { value: get, writable: true, configurable: true },
  has: {
    value(this: NodeRequestHeaders, name: string): boolean {
      return get.call(this, name) !== null;
    },
    writable: true,
    configurable: true,
  },
};
// Everything else reads or changes the whole list: fill it first.
for (const key of ["append", "set", "delete", "getSetCookie", "forEach", "entries", "keys", "values", Symbol.iterator]) {
  const original = base[key]!;
  methods[key] = {
    value(this: NodeRequestHeaders, ...args: unknown[]): unknown {
      // fill() itself appends: only the first call of all fills.
      if (this[node] !== undefined) fill(this);
      return original.apply(this, args);
    },
    writable: true,
    configurable: true,
  };
}
Object.defineProperties(NodeRequestHeaders.prototype, methods);

/** Request headers backed by Node's, for a handler context. */
export function nodeRequestHeaders(headers: IncomingHttpHeaders): Headers {
  return new NodeRequestHeaders(headers);
}
