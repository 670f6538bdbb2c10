// Logs a loop's failures once per outage (then once a minute while it lasts)
// and its recovery, instead of a line per retry.
import type { Logger } from "../log.js";

export interface OutageLog {
  failed(err: unknown): void;
  ok(): void;
}

export function createOutageLog(logger: Logger, what: string, repeatMs = 60_000): OutageLog {
  let since: number | undefined;
  let lastLogged = 0;
  let failures = 0;
  return {
    failed(err) {
      const now = Date.now();
      failures++;
      since ??= now;
      if (failures === 1 || now - lastLogged >= repeatMs) {
        lastLogged = now;
        logger.warn(`${what} failed; will retry`, { err, failures, sinceMs: now - since });
      }
    },
    ok() {
      if (since === undefined) return;
      logger.info(`${what} works again`, { failures, afterMs: Date.now() - since });
      since = undefined;
      failures = 0;
    },
  };
}
