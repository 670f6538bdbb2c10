// The one helper every child of this project is started with.
import { describe, expect, it } from "vitest";
import { isProcessAlive, spawnChild, startedOrStopped } from "../src/child-process.js";

const node = process.execPath;

describe("spawnChild", () => {
  it("keeps output lines in the tail, lets protocol lines through to the caller only, and reports an unexpected exit", async () => {
    const protocol: string[] = [];
    let unexpected: { exitCode: number | null; tail: string } | undefined;
    const child = spawnChild({
      name: "talker",
      file: node,
      args: ["-e", `console.log('{"event":"listening","port":7}'); console.log("plain"); console.error("oops"); process.exit(3)`],
      onStdoutLine: (line) => (line.startsWith("{") ? (protocol.push(line), true) : false),
      onUnexpectedExit: (exit, tail) => (unexpected = { exitCode: exit.exitCode, tail }),
    });
    const exit = await child.exit;
    expect(exit).toEqual({ exitCode: 3, signal: null });
    expect(child.exited).toBe(true);
    expect(protocol).toEqual(['{"event":"listening","port":7}']);
    expect(child.tail.text().split("\n").sort()).toEqual(["oops", "plain"]);
    expect(unexpected?.exitCode).toBe(3);
    expect(unexpected?.tail).toContain("oops");
  });

  it("stops with SIGTERM, and with SIGKILL after the grace when TERM is ignored; a stopped child is not unexpected", async () => {
    let unexpected = false;
    let ready!: () => void;
    const started = new Promise<void>((resolve) => (ready = resolve));
    const child = spawnChild({
      name: "stubborn",
      file: node,
      args: ["-e", `process.on("SIGTERM", () => {}); console.log("up"); setInterval(() => {}, 1000)`],
      onStdoutLine: (line) => (line === "up" ? (ready(), true) : false),
      onUnexpectedExit: () => (unexpected = true),
    });
    await started;
    let killed = false;
    const exit = await child.stop(200, () => (killed = true));
    expect(killed).toBe(true);
    expect(exit.signal).toBe("SIGKILL");
    expect(child.tail.text()).toMatch(/did not stop within 200 ms of SIGTERM: killed/);
    expect(unexpected).toBe(false);
    expect(isProcessAlive(child.pid!)).toBe(false);
    // Idempotent: the same end again.
    expect(await child.stop(200)).toEqual(exit);
  });

  it("reports a program that cannot be started as an exit, with the cause in the tail", async () => {
    const child = spawnChild({ name: "missing", file: "/nonexistent/program", args: [] });
    expect(await child.exit).toEqual({ exitCode: null, signal: null });
    expect(child.tail.text()).toMatch(/cannot start \/nonexistent\/program: .*ENOENT/);
  });
});

describe("startedOrStopped", () => {
  it("rejects with the child's last output when it exits before it is ready", async () => {
    const child = spawnChild({ name: "quitter", file: node, args: ["-e", `console.error("data directory in use"); process.exit(1)`] });
    await expect(startedOrStopped(child, new Promise<never>(() => {}), "listening", 60_000)).rejects.toThrow(
      /quitter exited before listening \(code 1, signal null\); its output:\ndata directory in use/,
    );
  });

  it("stops a child that never gets ready in time", async () => {
    const child = spawnChild({ name: "sleeper", file: node, args: ["-e", "setInterval(() => {}, 1000)"] });
    await expect(startedOrStopped(child, new Promise<never>(() => {}), "listening", 50)).rejects.toThrow(/sleeper did not report listening within 50 ms/);
    expect(child.exited).toBe(true);
  });
});
