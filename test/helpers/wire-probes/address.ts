// Where a probe connects: "host:port" (the gRPC port) or a URL (the HTTP port).
export interface Address {
  host: string;
  port: number;
}

export function parseAddress(target: string): Address {
  const hostPort = /^[a-z]+:\/\//i.test(target) ? new URL(target).host : target;
  const i = hostPort.lastIndexOf(":");
  if (i < 0) throw new Error(`no port in ${target}`);
  const host = hostPort.slice(0, i).replace(/^\[|\]$/g, "");
  return { host, port: Number(hostPort.slice(i + 1)) };
}

export function httpBase(target: string): string {
  const { host, port } = parseAddress(target);
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
