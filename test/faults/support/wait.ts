// Waiting on conditions, never on bare sleeps (a sleep here only paces a
// poll, or holds a fault for its stated duration).

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Polls check until it returns a value (not undefined/false), boundMs passes
 * or stop() says to give up; resolves with the value, or undefined.
 */
export async function until<T>(
  check: () => Promise<T | undefined | false> | T | undefined | false,
  boundMs: number,
  o: { everyMs?: number; stop?: () => boolean } = {},
): Promise<T | undefined> {
  const end = Date.now() + boundMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end || o.stop?.()) return undefined;
    await sleep(o.everyMs ?? 50);
  }
}
