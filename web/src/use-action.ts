// A button's call: busy while it runs, its error kept until the next try.
import { useState } from "preact/hooks";

export interface Action<A extends unknown[]> {
  run(...args: A): Promise<void>;
  busy: boolean;
  error: unknown;
  clear(): void;
}

export function useAction<A extends unknown[]>(fn: (...args: A) => Promise<unknown>): Action<A> {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  return {
    busy,
    error,
    clear: () => setError(undefined),
    async run(...args) {
      setBusy(true);
      setError(undefined);
      try {
        await fn(...args);
      } catch (err) {
        setError(err);
      } finally {
        setBusy(false);
      }
    },
  };
}
