// A tiny history router: the path is state; links push it without a reload.
// The API serves index.html for these paths too (src/api/static-assets.ts).
import { useEffect, useState } from "preact/hooks";

const listeners = new Set<() => void>();
window.addEventListener("popstate", () => listeners.forEach((l) => l()));

export function navigate(path: string): void {
  if (path === location.pathname) return;
  history.pushState(null, "", path);
  listeners.forEach((l) => l());
}

export function usePath(): string {
  const [path, setPath] = useState(location.pathname);
  useEffect(() => {
    const l = () => setPath(location.pathname);
    listeners.add(l);
    return () => void listeners.delete(l);
  }, []);
  return path;
}

export type Route = { view: "list" } | { view: "new" } | { view: "deployment"; name: string };

export function routeOf(path: string): Route {
  if (path === "/new") return { view: "new" };
  const m = /^\/deployments\/([a-z0-9-]+)$/.exec(path);
  if (m) return { view: "deployment", name: m[1]! };
  return { view: "list" };
}

export const deploymentPath = (name: string) => `/deployments/${name}`;
