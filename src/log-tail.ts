// The last lines a child process wrote, kept for failure reports.
const MAX_LINE_CHARS = 2_000;

export class LogTail {
  private readonly lines: string[] = [];

  constructor(private readonly maxLines = 50) {}

  push(line: string): void {
    this.lines.push(line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}…` : line);
    if (this.lines.length > this.maxLines) this.lines.shift();
  }

  /** The last `lines` lines kept (all by default). */
  text(lines = this.maxLines): string {
    return this.lines.slice(-lines).join("\n");
  }
}
