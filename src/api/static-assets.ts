// The web dashboard's built files (`npm run build` writes them to dist/web),
// served by the Connect port beside the RPC routes: GET and HEAD only, the
// app's own routes answered with index.html, hashed assets cached for good.
// Files are read once at start (the bundle is small) and gzipped once.
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { headerValue } from "./cors.js";
import type { NodeRequest, NodeResponse } from "./node-http.js";

export interface StaticAssets {
  /** Answers a GET or HEAD for a file or an app route; false leaves the request to the RPC routes. */
  serve(req: NodeRequest, res: NodeResponse, path: string): boolean;
  /** How many files it serves. */
  readonly files: number;
}

interface Asset {
  body: Buffer;
  gzip: Buffer | undefined;
  headers: Record<string, string>;
  etag: string;
}

const contentTypes: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".webp": "image/webp",
  ".woff2": "font/woff2",
  ".txt": "text/plain; charset=utf-8",
};

/** Vite puts content-hashed names under assets/: a new build means new names. */
const hashedPrefix = "/assets/";
const immutable = "public, max-age=31536000, immutable";
/** The page itself is checked every time (ETag), so a new build shows up at once. */
const revalidate = "no-cache";
/** The page only talks to its own origin (the Connect routes on this port). */
const pageSecurity = {
  "content-security-policy":
    "default-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
};

/** Paths the app routes itself (history API); each gets index.html. */
export function isAppRoute(urlPath: string): boolean {
  return urlPath === "/" || urlPath === "/new" || urlPath === "/deployments" || /^\/deployments\/[a-z0-9-]{1,63}$/.test(urlPath);
}

function filesUnder(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const rel = `${prefix}/${entry.name}`;
    if (entry.isDirectory()) out.push(...filesUnder(path.join(dir, entry.name), rel));
    else if (entry.isFile()) out.push(rel);
  }
  return out;
}

function loadAsset(file: string, urlPath: string): Asset {
  const body = readFileSync(file);
  const type = contentTypes[path.extname(file).toLowerCase()] ?? "application/octet-stream";
  const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
  const compressible = /^(text\/|application\/json|image\/svg)/.test(type) && body.length > 1024;
  const gzip = compressible ? gzipSync(body, { level: 9 }) : undefined;
  const headers: Record<string, string> = {
    "content-type": type,
    "cache-control": urlPath.startsWith(hashedPrefix) ? immutable : revalidate,
    "x-content-type-options": "nosniff",
    etag,
    ...(type.startsWith("text/html") ? pageSecurity : {}),
    ...(gzip && gzip.length < body.length ? { vary: "accept-encoding" } : {}),
  };
  return { body, gzip: gzip && gzip.length < body.length ? gzip : undefined, headers, etag };
}

function acceptsGzip(req: NodeRequest): boolean {
  const v = headerValue(req.headers["accept-encoding"]);
  return v !== undefined && /\bgzip\b/.test(v);
}

function notModified(req: NodeRequest, etag: string): boolean {
  const v = headerValue(req.headers["if-none-match"]);
  return v !== undefined && v.split(",").some((t) => t.trim() === etag || t.trim() === `W/${etag}`);
}

/** The files under `dir` (undefined when it has no index.html: the dashboard was not built). */
export function loadStaticAssets(dir: string): StaticAssets | undefined {
  if (!existsSync(path.join(dir, "index.html")) || !statSync(dir).isDirectory()) return undefined;
  const assets = new Map<string, Asset>();
  for (const rel of filesUnder(dir)) assets.set(rel, loadAsset(path.join(dir, rel), rel));
  const index = assets.get("/index.html")!;
  return {
    files: assets.size,
    serve(req, res, urlPath) {
      if (req.method !== "GET" && req.method !== "HEAD") return false;
      const asset = assets.get(urlPath) ?? (isAppRoute(urlPath) ? index : undefined);
      if (asset === undefined) return false;
      if (notModified(req, asset.etag)) {
        res.writeHead(304, { etag: asset.etag, "cache-control": asset.headers["cache-control"]! });
        res.end();
        return true;
      }
      const body = asset.gzip !== undefined && acceptsGzip(req) ? asset.gzip : asset.body;
      const headers: Record<string, string> = { ...asset.headers, "content-length": String(body.length) };
      if (body === asset.gzip) headers["content-encoding"] = "gzip";
      res.writeHead(200, headers);
      if (req.method === "HEAD") res.end();
      else res.end(body);
      return true;
    },
  };
}
