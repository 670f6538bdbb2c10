// The JSON log lines a process writes on stderr, kept (every warning and
// error, the last of the rest) and matched as they come.
import type { Readable } from "node:stream";

export type LogLine = Record<string, unknown>;

export interface LogLines {
  readonly lines: LogLine[];
  /** The last of the raw output (crash traces are not JSON). */
  tail(chars?: number): string;
  /** Resolves with the first line (already seen or to come) that matches, or undefined after boundMs or once `ended` resolves. */
  waitFor(match: (line: LogLine) => boolean, boundMs: number): Promise<LogLine | undefined>;
}

export function readLogLines(stream: Readable, ended: Promise<unknown>): LogLines {
  const lines: LogLine[] = [];
  const listeners = new Set<(line: LogLine) => void>();
  let raw = "";
  let buf = "";
  stream.on("data", (d: Buffer) => {
    const s = d.toString();
    raw = (raw + s).slice(-100_000);
    buf += s;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const text = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        continue;
      }
      lines.push(line);
      // Without growing for ever under load: every warning and error, the last 2,000 of the rest.
      if (lines.length > 4000) {
        const keep = lines.filter((l, i) => l["level"] === "warn" || l["level"] === "error" || i >= lines.length - 2000);
        lines.splice(0, lines.length, ...keep);
      }
      for (const listener of listeners) listener(line);
    }
  });
  const waitFor = (match: (line: LogLine) => boolean, boundMs: number) =>
    new Promise<LogLine | undefined>((resolve) => {
      const seen = lines.find(match);
      if (seen) return resolve(seen);
      const done = (line: LogLine | undefined) => {
        listeners.delete(listener);
        clearTimeout(timer);
        resolve(line);
      };
      const listener = (line: LogLine) => {
        if (match(line)) done(line);
      };
      const timer = setTimeout(() => done(undefined), boundMs);
      listeners.add(listener);
      void ended.then(() => done(undefined));
    });
  return { lines, tail: (chars = 3000) => raw.slice(-chars), waitFor };
}
