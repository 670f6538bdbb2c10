// What every baseline script shares: its settings as JSON in argv[2], JSON
// lines on stdout, and an exit when stdin closes (so none outlives the bench).
export function scriptArgs<T>(): T {
  const text = process.argv[2];
  if (!text) {
    process.stderr.write("usage: <script> '<json settings>'\n");
    process.exit(2);
  }
  process.stdin.on("end", () => process.exit(0));
  process.stdin.resume();
  return JSON.parse(text) as T;
}

export function emit(o: unknown): Promise<void> {
  return new Promise((r) => process.stdout.write(JSON.stringify(o) + "\n", () => r()));
}

/** Prints the result and exits 0. */
export async function finish(result: unknown): Promise<never> {
  await emit({ result });
  process.exit(0);
}

/** Lines written to stdin, one callback each. */
export function onLine(handler: (line: string) => void): void {
  let buf = "";
  process.stdin.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      handler(buf.slice(0, i).trim());
      buf = buf.slice(i + 1);
    }
  });
}
