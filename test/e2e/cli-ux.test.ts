// The CLI as a new user meets it, run as subprocesses against the real
// all-in-one process: `login` saves the address and key, a deployment's name
// is captured with -o name / -o json, `get` shows it whole, the live display
// under a pseudo-terminal (util-linux `script`), watch's JSON lines, and what
// a missing server, a missing key, an unknown --state and an unreadable
// --canary print; the autoscaler's flags and what a later scale keeps.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NATS_URL, createTestDatabase, waitFor, type TestDatabase } from "../helpers/services.js";
import { CLI, runCli, startSystem, type RunningSystem } from "../helpers/system.js";

let tdb: TestDatabase;
let sys: RunningSystem;
let dir: string;
/** No key or address in the environment: what `login` saved is used. */
let env: Record<string, string>;
let model: string;
const cli = (...args: string[]) => runCli(args, env);

beforeAll(async () => {
  tdb = await createTestDatabase({ migrate: false });
  dir = mkdtempSync(path.join(tmpdir(), "md-cli-ux-"));
  sys = await startSystem({ databaseUrl: tdb.url, natsUrl: NATS_URL });
  env = { ...sys.env, XDG_CONFIG_HOME: path.join(dir, "config") };
  delete env["MODELDEPLOY_URL"];
  delete env["MODELDEPLOY_API_KEY"];
  delete env["CI"];
  model = path.join(dir, "sample.onnx");
  expect((await cli("sample-model", model)).code).toBe(0);
});

afterAll(async () => {
  const output = sys?.output() ?? "";
  const code = await sys?.stop();
  rmSync(dir, { recursive: true, force: true });
  await tdb?.drop();
  expect(output).not.toContain("unhandled rejection");
  expect(code).toBe(0);
});

/** The CLI under a pseudo-terminal of 40×120: stdout and stderr as the terminal got them. */
function underPty(args: string[]): Promise<{ code: number | null; output: string }> {
  const command = `stty rows 40 cols 120; exec ${[process.execPath, CLI, ...args].map((a) => `'${a}'`).join(" ")}`;
  return new Promise((resolve) => {
    const child = spawn("script", ["-qfec", command, "/dev/null"], { env: { ...env, TERM: "xterm" }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (d: Buffer) => (output += d.toString()));
    child.stderr.on("data", (d: Buffer) => (output += d.toString()));
    child.on("exit", (code) => resolve({ code, output }));
  });
}

async function scalingOf(name: string): Promise<Record<string, number>> {
  return (JSON.parse((await cli("get", name, "-o", "json")).stdout) as { scaling: Record<string, number> }).scaling;
}

describe("modeldeploy CLI, first use", () => {
  it("says how to start a server when none answers, and how to get a key when none is given", async () => {
    const none = await runCli(["list", "--url", "http://127.0.0.1:9"], env);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("error: [unavailable] no modeldeploy API answers at http://127.0.0.1:9");
    expect(none.stderr).toContain("`npm start`");
    expect(none.stderr).not.toMatch(/\n\s+at /);

    const noKey = await runCli(["list", "--url", sys.httpUrl], env);
    expect(noKey.code).toBe(1);
    expect(noKey.stderr).toContain("error: [unauthenticated] missing API key");
    expect(noKey.stderr).toContain("  reason: API_KEY_MISSING");
    expect(noKey.stderr).toContain("`npx modeldeploy login`");
  });

  it("logs in with the bootstrap key and saves address and key (readable by the user alone)", async () => {
    const res = await cli("login", "--url", sys.httpUrl);
    expect(res.stderr).toBe("");
    expect(res.code).toBe(0);
    const file = path.join(dir, "config", "modeldeploy", "config.json");
    expect(res.stdout).toContain(`saved to ${file}`);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(file, "utf8"))).toEqual({ url: sys.httpUrl, apiKey: sys.apiKey });
    const list = await cli("list");
    expect(list).toMatchObject({ code: 0, stderr: "" });
  });

  it("captures a deployment's name with -o name and -o json, and get shows the whole deployment", async () => {
    const named = await cli("deploy", "--model", "acme/tiny-linear", "--uri", model, "--suffix", "ux", "--wait", "-o", "name");
    expect(named.stderr).toBe("");
    expect(named.stdout).toBe("tiny-linear-ux\n");
    expect(named.code).toBe(0);

    const created = await cli("deploy", "--model", "acme/tiny-linear", "--uri", model, "-o", "json");
    const body = JSON.parse(created.stdout) as { deployment: { name: string }; task: { id: string; kind: string } };
    expect(body.task.kind).toBe("TASK_KIND_DEPLOY");
    expect(body.deployment.name).toMatch(/^tiny-linear-/);
    const waited = await cli("delete", body.deployment.name, "--wait", "-o", "json");
    expect(JSON.parse(waited.stdout)).toMatchObject({ kind: "TASK_KIND_DELETE", status: "TASK_STATUS_COMPLETED" });
    expect(waited.code).toBe(0);

    const get = await cli("get", "tiny-linear-ux");
    expect(get.code).toBe(0);
    expect(get.stdout).toMatch(/^Name: +tiny-linear-ux\n/);
    expect(get.stdout).toMatch(/\nState: +RUNNING\n/);
    expect(get.stdout).toMatch(new RegExp(`\\nEndpoint: +${sys.gatewayUrl}/default/v2/models/tiny-linear-ux\\n`));
    expect(get.stdout).toContain(`  URI: `);
    expect(get.stdout).toMatch(/\nReplicas: +1\/1 ready/);
    const asJson = JSON.parse((await cli("get", "tiny-linear-ux", "-o", "json")).stdout) as { name: string; state: string };
    expect(asJson).toMatchObject({ name: "tiny-linear-ux", state: "DEPLOYMENT_STATE_RUNNING" });

    // Completion offers deployment names where a NAME goes (from the API, with the saved key).
    const names = await cli("--get-yargs-completions", "modeldeploy", "get", "tiny");
    expect(names.stdout.split("\n")).toContain("tiny-linear-ux");
  });

  it("lists the valid states for an unknown --state", async () => {
    const res = await cli("list", "--state", "sleeping");
    // A flag given wrong is a usage error, like yargs' own.
    expect(res.code).toBe(2);
    expect(res.stderr).toBe(
      'error: --state: unknown value "sleeping"; valid values: pending, initializing, downloading, deploying, running, updating, rolling_back, stopped, failed, deleting, deleted, idle\n',
    );
    expect((await cli("list", "--state", "running", "-o", "name")).stdout).toBe("tiny-linear-ux\n");
  });

  it("refuses a --canary it cannot read before any call, and sets the autoscaler's settings", async () => {
    const before = (await cli("get", "tiny-linear-ux", "-o", "json")).stdout;
    const bad = await cli("update", "tiny-linear-ux", "--uri", model, "--canary", "10:30,50");
    expect(bad).toMatchObject({ code: 2, stdout: "" });
    expect(bad.stderr).toBe('error: --canary takes steps PERCENT:PAUSE_SECONDS separated by commas, e.g. 10:30,50:30; got "50"\n');
    expect((await cli("get", "tiny-linear-ux", "-o", "json")).stdout).toBe(before);

    const tuned = await cli("scale", "tiny-linear-ux", "--target-in-flight", "8", "--scale-down-delay", "30", "--wait");
    expect(tuned.code).toBe(0);
    expect(await scalingOf("tiny-linear-ux")).toMatchObject({ minReplicas: 1, maxReplicas: 1, targetInFlight: 8, scaleDownDelaySeconds: 30 });
  });

  it("draws a live progress block under a terminal, and exits with the task's outcome", async () => {
    const res = await underPty(["scale", "tiny-linear-ux", "--replicas", "2", "--wait"]);
    expect(res.code).toBe(0);
    // Redrawn in place: lines erased and rewritten, with the bar and the replicas.
    expect(res.output).toContain("\x1b[2K\x1b[1A");
    expect(res.output).toMatch(/SCALE \w+ +\[[█░]{24}\] +\d+%/);
    expect(res.output).toMatch(/replicas 2\/2 ready/);
    expect(res.output).toMatch(/tiny-linear-ux {2}RUNNING {2}rev 1 {2}replicas 2\/2 ready/);
    expect(res.output).toMatch(/task \w+ SCALE COMPLETED/);

    // Not a terminal: plain lines, one per event.
    const plain = await cli("scale", "tiny-linear-ux", "--replicas", "1", "--wait");
    expect(plain.stdout).not.toContain("\x1b[");
    expect(plain.stdout).toMatch(/\n#\d+ RUNNING {2}DONE 100% /);
    expect(plain.code).toBe(0);
    // --replicas alone kept the autoscaler's settings set before.
    expect(await scalingOf("tiny-linear-ux")).toMatchObject({ minReplicas: 1, maxReplicas: 1, targetInFlight: 8, scaleDownDelaySeconds: 30 });
  });

  it("--wait with -o name exits 1 and says why on stderr when the deployment fails", async () => {
    const broken = path.join(dir, "broken.onnx");
    writeFileSync(broken, "this is not an onnx file");
    const res = await cli("deploy", "--model", "acme/broken", "--uri", broken, "--suffix", "broken", "--wait", "-o", "name");
    expect(res.code).toBe(1);
    expect(res.stdout).toBe("broken-broken\n");
    expect(res.stderr).toMatch(/^error: task \w+ DEPLOY FAILED: \w+: /);
    expect(res.stderr).not.toMatch(/\n\s+at /);
    expect((await cli("delete", "broken-broken", "--wait")).code).toBe(0);
  });

  it("watch prints one JSON event a line, and ends when the deployment is deleted", async () => {
    const child = spawn(process.execPath, [CLI, "watch", "tiny-linear-ux", "-o", "json"], { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    const watching = new Promise<{ code: number | null; stdout: string }>((resolve) => child.on("exit", (code) => resolve({ code, stdout })));
    let watch: { code: number | null; stdout: string };
    try {
      await waitFor("the watch's snapshot", () => stdout.includes("EVENT_TYPE_SNAPSHOT") || undefined, 20_000, 20);
      const deleted = await cli("delete", "tiny-linear-ux", "--wait");
      expect(deleted.code).toBe(0);
      watch = await watching;
    } finally {
      if (child.exitCode === null) child.kill();
    }
    expect(watch.code).toBe(0);
    const events = watch.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { type: string; deployment?: { state: string } });
    expect(events[0]!.type).toBe("EVENT_TYPE_SNAPSHOT");
    expect(events.at(-1)!.type).toBe("EVENT_TYPE_DELETED");
  });

  it("completes commands, and prints its completion script", async () => {
    const script = await cli("completion");
    expect(script.stdout).toContain("###-begin-modeldeploy-completions-###");
    const words = await cli("--get-yargs-completions", "modeldeploy", "sc");
    expect(words.stdout.split("\n")).toContain("scale");
  });
});
