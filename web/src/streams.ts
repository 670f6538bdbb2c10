// Server streams that stay open: each one is opened again after it ends or
// fails (the API restarted, the network dropped), resuming where it left off,
// until the view that opened it goes away.
import { isAbort, isUnauthenticated } from "./errors.js";

export interface StreamLoop {
  /** Opens the stream once; resolves when it ends. `onOpen` when its response headers arrive. */
  run(signal: AbortSignal, onOpen: () => void): Promise<void>;
  /** Live (true) or retrying after this error. */
  onStatus(live: boolean, err?: unknown): void;
  /** An error that retrying cannot fix (no or a revoked key, a deployment that is gone). */
  isFinal(err: unknown): boolean;
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => (clearTimeout(t), resolve()), { once: true });
  });

export function keepStreaming(loop: StreamLoop): () => void {
  const abort = new AbortController();
  const { signal } = abort;
  void (async () => {
    let delay = 500;
    while (!signal.aborted) {
      try {
        await loop.run(signal, () => {
          delay = 500;
          loop.onStatus(true);
        });
        if (signal.aborted) return;
        loop.onStatus(false);
      } catch (err) {
        if (signal.aborted || isAbort(err)) return;
        loop.onStatus(false, err);
        if (isUnauthenticated(err) || loop.isFinal(err)) return;
      }
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 10_000);
    }
  })();
  return () => abort.abort();
}
