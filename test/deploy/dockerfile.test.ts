// deploy/Dockerfile, without a container engine: its stages read as they
// should (multi-stage, non-root, the model-server runtime in the image), and
// the commands of its production stage, run here in a folder laid out as
// the image is, give a tree that serves a model.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { validate } from "dockerfile-utils";
import { afterAll, describe, expect, it } from "vitest";
import { deployDir, envOf, type Instruction, kustomizationResources, k8sDir, podTemplate, readDockerfile, root, type Stage } from "./deploy-files.js";

const dockerfile = readDockerfile(path.join(deployDir, "Dockerfile"));
const stages = dockerfile.stages;
const final = stages[stages.length - 1]!;
const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
  type: string;
  dependencies: Record<string, string>;
  scripts: Record<string, string>;
};

const all = (stage: Stage, keyword: string): Instruction[] => stage.instructions.filter((i) => i.keyword === keyword);
const stageNamed = (name: string) => stages.find((s) => s.name === name);
/** `COPY --from=deps /app/node_modules ./node_modules` → { from: "deps", sources: ["/app/node_modules"], dest: "./node_modules" }. */
function copies(stage: Stage): Array<{ from: string | undefined; sources: string[]; dest: string }> {
  return all(stage, "COPY").map((c) => {
    const words = c.args.split(/\s+/);
    const from = words.find((w) => w.startsWith("--from="))?.slice("--from=".length);
    const paths = words.filter((w) => !w.startsWith("--"));
    return { from, sources: paths.slice(0, -1), dest: paths[paths.length - 1]! };
  });
}
/** ENTRYPOINT/CMD in exec form. */
const execForm = (ins: Instruction | undefined) => (ins ? (JSON.parse(ins.args) as string[]) : undefined);

describe("Dockerfile", () => {
  it("validates: no error or warning from dockerfile-utils (the validator behind VS Code's Dockerfile support)", () => {
    const text = readFileSync(path.join(deployDir, "Dockerfile"), "utf8");
    expect(validate(text).map((d) => `line ${d.range.start.line + 1}: ${d.message}`)).toEqual([]);
    // …which does catch a broken one.
    expect(validate(text.replace("USER 1000:1000", "USR 1000:1000")).map((d) => d.message)).toEqual(["Unknown instruction: USR"]);
  });

  it("is multi-stage: the image gets only what the other stages built", () => {
    expect(stages.length).toBeGreaterThanOrEqual(3);
    for (const s of stages.slice(0, -1)) expect(s.name, s.from).toBeDefined();
    const fromStages = copies(final).filter((c) => c.from !== undefined);
    expect(fromStages.map((c) => c.from).sort()).toEqual(["build", "deps"]);
    expect(
      all(final, "RUN").some((r) => /npm (ci|install)/.test(r.args)),
      "no install in the final stage",
    ).toBe(false);
  });

  it("builds on Debian (glibc: onnxruntime-node's engine is linked against it), one base for every stage", () => {
    const base = dockerfile.args.find((a) => a.keyword === "ARG" && a.args.startsWith("NODE_IMAGE="))!.args.split("=")[1]!;
    expect(base).toMatch(/^node:20[.\d]*-(bookworm|bullseye|trixie)(-slim)?$/);
    for (const s of stages) expect(s.from).toBe("${NODE_IMAGE}");
  });

  it("runs as a non-root user, by number, the same one the Kubernetes pods ask for", () => {
    const users = all(final, "USER");
    expect(users.length).toBeGreaterThan(0);
    const [uid] = users[users.length - 1]!.args.split(":");
    expect(Number(uid)).toBeGreaterThan(0);
    for (const obj of kustomizationResources(path.join(k8sDir, "base"))) {
      const spec = podTemplate(obj)?.spec;
      if (spec) expect(spec.securityContext?.runAsUser, obj.metadata.name).toBe(Number(uid));
    }
    // The data directory the image sets belongs to that user.
    const dataDir = envOf(final)["MODELDEPLOY_DATA_DIR"];
    expect(dataDir).toBeDefined();
    expect(all(final, "RUN").some((r) => r.args.includes(`chown ${users[users.length - 1]!.args} ${dataDir}`))).toBe(true);
  });

  it("installs dependencies with onnxruntime-node's download skipped, in every stage that installs", () => {
    const installing = stages.filter((s) => all(s, "RUN").some((r) => r.args.includes("npm ci")));
    expect(installing.map((s) => s.name).sort()).toEqual(["build", "deps"]);
    for (const s of installing) {
      expect(envOf(s)["ONNXRUNTIME_NODE_INSTALL"], s.name).toBe("skip");
      // The lock file is in place before npm ci runs.
      const npmCi = s.instructions.findIndex((i) => i.keyword === "RUN" && i.args.includes("npm ci"));
      const copied = s.instructions.slice(0, npmCi).filter((i) => i.keyword === "COPY");
      expect(copied.map((c) => c.args).join(" "), s.name).toMatch(/package\.json package-lock\.json/);
    }
    expect(all(stageNamed("deps")!, "RUN").some((r) => r.args.includes("npm ci --omit=dev"))).toBe(true);
  });

  it("gives the build stage what `npm run build` reads: tsc's project and sources, and the folder of each script it runs (the dashboard)", () => {
    const build = stageNamed("build")!;
    expect(all(build, "RUN").map((r) => r.args)).toContain("npm run build");
    const copied = copies(build).flatMap((c) => c.sources);
    const script = pkg.scripts["build"]!;
    const project = /tsc -[bp] (\S+)/.exec(script)![1]!;
    const { include } = JSON.parse(readFileSync(path.join(root, project), "utf8")) as { include: string[] };
    const configs = [...script.matchAll(/node (\S+)/g)].map((m) => m[1]!.split("/")[0]!);
    expect(configs).toContain("web");
    for (const needed of [project, ...include, ...configs]) expect(copied, needed).toContain(needed);
  });

  it("holds the model-server runtime: production dependencies with every package the code imports, the compiled code, package.json", () => {
    const dests = copies(final).map((c) => `${c.from ?? "context"}:${c.sources.join(",")}→${c.dest}`);
    expect(dests).toEqual(
      expect.arrayContaining(["deps:/app/node_modules→./node_modules", "build:/app/dist→./dist", "context:package.json→./", "context:bin→./bin"]),
    );
    // dist/ is ES modules because package.json says so.
    expect(pkg.type).toBe("module");
    const missing = [...importedPackages(path.join(root, "src"))].filter((p) => !(p in pkg.dependencies));
    expect(missing, "imported by src/ but not a production dependency").toEqual([]);
    expect(pkg.dependencies).toHaveProperty("onnxruntime-node");
  });

  it("starts the role given as the command, an API by default", () => {
    expect(execForm(all(final, "ENTRYPOINT").pop())).toEqual(["node", "bin/modeldeploy.js"]);
    expect(execForm(all(final, "CMD").pop())).toEqual(["api"]);
    expect(all(final, "EXPOSE").flatMap((e) => e.args.split(/\s+/).map(Number))).toEqual([50051, 8080, 8000]);
  });

  it("has a .dockerignore that keeps this machine's builds out and what the stages copy in", () => {
    const ignored = readFileSync(path.join(root, ".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith("#"));
    expect(ignored).toEqual(expect.arrayContaining([".git", ".modeldeploy"]));
    // Everything git ignores (builds, data, test output) stays out too.
    const gitIgnored = readFileSync(path.join(root, ".gitignore"), "utf8")
      .split("\n")
      .map((l) => l.trim().replace(/\/$/, ""))
      .filter((l) => l && !l.startsWith("#"));
    expect(ignored).toEqual(expect.arrayContaining(gitIgnored));
    const copiedFromContext = stages.flatMap((s) => copies(s).filter((c) => c.from === undefined)).flatMap((c) => c.sources);
    for (const source of copiedFromContext) {
      expect(ignored, source).not.toContain(source);
      expect(existsSync(path.join(root, source)), source).toBe(true);
    }
  });
});

/** Packages named by bare imports in the .ts files under dir (node: built-ins left out). */
function importedPackages(dir: string): Set<string> {
  const out = new Set<string>();
  for (const file of readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts"))) {
    const source = readFileSync(path.join(dir, file), "utf8");
    for (const m of source.matchAll(/(?:^import|^export)[^;]*?\sfrom\s+"([^".][^"]*)"|\bimport\(\s*"([^".][^"]*)"\s*\)/gm)) {
      const spec = m[1] ?? m[2]!;
      if (spec.startsWith("node:")) continue;
      out.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
    }
  }
  return out;
}

describe("the image's production stage, run here", () => {
  const dir = mkdtempSync(path.join(tmpdir(), "md-image-"));
  const children: Array<ReturnType<typeof spawn>> = [];
  afterAll(() => {
    for (const child of children) child.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("installs production dependencies with the deps stage's commands, keeps this platform's engine, and serves a model from dist/", async () => {
    expect(existsSync(path.join(root, "dist/model-server/main.js")), "npm run build first").toBe(true);
    const deps = stageNamed("deps")!;
    for (const c of copies(deps).filter((x) => x.from === undefined)) for (const s of c.sources) copyFileSync(path.join(root, s), path.join(dir, s));
    for (const run of all(deps, "RUN")) {
      // The stage's own shell commands; npm may answer from its cache.
      const r = spawnSync("sh", ["-c", run.args], {
        cwd: dir,
        encoding: "utf8",
        env: { ...process.env, ...envOf(deps), npm_config_prefer_offline: "true", npm_config_audit: "false" },
        timeout: 300_000,
      });
      expect(r.status, `${run.args}\n${r.stdout}\n${r.stderr}`).toBe(0);
    }
    const engines = path.join(dir, "node_modules/onnxruntime-node/bin/napi-v6");
    expect(readdirSync(engines)).toEqual(["linux"]);
    expect(readdirSync(path.join(engines, "linux"))).toEqual([process.arch]);
    expect(existsSync(path.join(dir, "node_modules/typescript")), "no dev dependencies").toBe(false);
    // Whether this npm runs install scripts or not (npm 11 may not), the
    // stage's environment makes onnxruntime-node's skip its download.
    const ortInstall = spawnSync(process.execPath, ["script/install"], {
      cwd: path.join(dir, "node_modules/onnxruntime-node"),
      encoding: "utf8",
      env: { PATH: process.env["PATH"], ...envOf(deps) },
      timeout: 60_000,
    });
    expect([ortInstall.status, ortInstall.stdout + ortInstall.stderr]).toEqual([0, ""]);
    // The final stage's other copies: dist/, bin/, package.json.
    cpSync(path.join(root, "dist"), path.join(dir, "dist"), { recursive: true });
    cpSync(path.join(root, "bin"), path.join(dir, "bin"), { recursive: true });
    copyFileSync(path.join(root, "package.json"), path.join(dir, "package.json"));

    const model = path.join(dir, "sample.onnx");
    const made = spawnSync(process.execPath, ["bin/modeldeploy.js", "sample-model", model], { cwd: dir, encoding: "utf8" });
    expect(made.status, made.stderr).toBe(0);
    const server = spawn(process.execPath, ["dist/model-server/main.js", "--model", model, "--name", "sample", "--port", "0"], {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(server);
    let logged = "";
    server.stderr.on("data", (chunk: Buffer) => (logged += chunk.toString()));
    let port: number | undefined;
    for await (const line of createInterface({ input: server.stdout })) {
      const event = /^\{"event":"ready","port":(\d+)\}$/.exec(line);
      if (event) {
        port = Number(event[1]);
        break;
      }
    }
    expect(port, logged).toBeDefined();
    const res = await fetch(`http://127.0.0.1:${port}/v2/models/sample/infer`, {
      method: "POST",
      body: JSON.stringify({
        inputs: [
          { name: "x", shape: [1, 4], datatype: "FP32", data: [1, 2, 3, 4] },
          { name: "ids", shape: [1], datatype: "INT64", data: [5] },
        ],
      }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outputs: Array<{ name: string; data: number[] }> };
    expect(body.outputs.find((o) => o.name === "ids_out")?.data).toEqual([6]);
  });
});
