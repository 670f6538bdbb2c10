// A TCP proxy in front of an API port, so that a case can cut every
// connection through it at once (RST), as a network failure would, while
// the API itself stays up.
import net from "node:net";

export interface TcpProxy {
  /** host:port to connect to instead of the target. */
  readonly address: string;
  /** Resets every open connection; returns how many. */
  cutAll(): number;
  close(): Promise<void>;
}

export async function startTcpProxy(target: string): Promise<TcpProxy> {
  const [host, port] = [target.slice(0, target.lastIndexOf(":")), Number(target.slice(target.lastIndexOf(":") + 1))];
  const pairs = new Set<[net.Socket, net.Socket]>();
  const server = net.createServer((client) => {
    const upstream = net.connect({ host, port });
    const pair: [net.Socket, net.Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port: own } = server.address() as net.AddressInfo;
  return {
    address: `127.0.0.1:${own}`,
    cutAll() {
      const n = pairs.size;
      for (const pair of [...pairs]) for (const s of pair) s.resetAndDestroy();
      pairs.clear();
      return n;
    },
    close() {
      for (const pair of [...pairs]) for (const s of pair) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
