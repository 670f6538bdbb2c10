// The last lines a child process wrote, kept for failure reports.
import type { Readable } from "node:stream";
import { createInterface } from "node:readline";

const MAX_LINE_CHARS = 2_000;

export class LogTail {
  private readonly lines: string[] = [];

  constructor(private readonly maxLines = 50) {}

  push(line: string): void {
    this.lines.push(line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line);
    if (this.lines.length > this.maxLines) this.lines.shift();
  }

  /** Feeds every line of the stream to `onLine` (default: keep it). */
  follow(stream: Readable, onLine: (line: string) => void = (l) => this.push(l)): void {
    createInterface({ input: stream, crlfDelay: Infinity }).on("line", onLine);
  }

  text(): string {
    return this.lines.join("\n");
  }
}
