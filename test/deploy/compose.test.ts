// deploy/compose.yaml validates against the Compose Specification's JSON
// schema (the copy the dclint package ships) and runs what it should:
// Postgres, NATS with JetStream, migrations, the API, two workers and the
// runtime, started in order.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { Script } from "node:vm";
import { Ajv } from "ajv";
import { describe, expect, it } from "vitest";
import { composeFile, deployDir, modeldeployServices, readCompose, readDockerfile } from "./deploy-files.js";

const require = createRequire(import.meta.url);
const dclint = path.dirname(require.resolve("dclint/package.json"));
const schemaFile = path.join(dclint, "schemas/compose.schema.json");

const composeValidator = () => (validator ??= compileSchema());
let validator: ReturnType<typeof compileSchema> | undefined;

function compileSchema() {
  const { $schema, ...schema } = JSON.parse(readFileSync(schemaFile, "utf8")) as Record<string, unknown>;
  // Draft-07, Ajv's own default, named by an address Ajv does not know it by.
  expect($schema).toMatch(/draft-07/);
  // `strict: false`: the schema carries annotations Ajv's strict mode refuses (deprecated, …).
  return new Ajv({ allErrors: true, strict: false, allowUnionTypes: true }).compile(schema);
}

describe("compose.yaml", () => {
  const compose = readCompose();

  it("validates against the Compose Specification schema", () => {
    const validate = composeValidator();
    const ok = validate(compose);
    expect(validate.errors ?? [], path.relative(deployDir, composeFile)).toEqual([]);
    expect(ok).toBe(true);
  });

  it("the schema check catches a broken file (a misspelt key, an unknown start condition)", () => {
    const validate = composeValidator();
    const broken = structuredClone(compose) as unknown as { services: Record<string, Record<string, unknown>> };
    broken.services["api"]!["helthcheck"] = { test: ["CMD", "true"] };
    expect(validate(broken)).toBe(false);
    const badDepends = structuredClone(compose) as unknown as { services: Record<string, Record<string, unknown>> };
    badDepends.services["api"]!["depends_on"] = { migrate: { condition: "finished" } };
    expect(validate(badDepends)).toBe(false);
  });

  it("has no error by dclint's rules (ports published on an interface, …; its style warnings aside)", () => {
    const r = spawnSync(process.execPath, [path.join(dclint, "bin/dclint.cjs"), "--quiet", "--color=false", composeFile], { cwd: deployDir, encoding: "utf8" });
    expect(r.status, r.stdout + r.stderr).toBe(0);
  });

  it("runs Postgres, NATS with JetStream, migrate, the API, two workers and the runtime", () => {
    expect(Object.keys(compose.services).sort()).toEqual(["api", "migrate", "nats", "postgres", "runtime", "worker"]);
    expect(compose.services["nats"]!.command).toContain("-js");
    expect(compose.services["worker"]!.deploy?.replicas).toBe(2);
    const roles = Object.fromEntries(modeldeployServices(compose).map(([name, s]) => [name, s.command]));
    expect(roles).toEqual({ migrate: ["migrate"], api: ["api"], runtime: ["runtime"], worker: ["worker"] });
  });

  it("builds every modeldeploy service from deploy/Dockerfile, from the repository root", () => {
    for (const [name, s] of modeldeployServices(compose)) {
      const context = path.resolve(deployDir, s.build!.context);
      expect(context, name).toBe(path.resolve(deployDir, ".."));
      expect(existsSync(path.join(context, s.build!.dockerfile!)), name).toBe(true);
      expect(s.image, name).toBe(compose.services["api"]!.image);
    }
    expect(readDockerfile(path.join(deployDir, "Dockerfile")).stages.length).toBeGreaterThan(1);
  });

  it("starts in order: migrate after Postgres and NATS are healthy, the rest after migrate succeeded, workers after the runtime", () => {
    const s = compose.services;
    expect(s["migrate"]!.depends_on).toEqual({ postgres: { condition: "service_healthy" }, nats: { condition: "service_healthy" } });
    expect(s["api"]!.depends_on).toEqual({ migrate: { condition: "service_completed_successfully" } });
    expect(s["worker"]!.depends_on).toMatchObject({
      migrate: { condition: "service_completed_successfully" },
      runtime: { condition: "service_healthy", restart: true },
    });
    for (const name of ["postgres", "nats", "api", "runtime"]) expect(s[name]!.healthcheck, name).toBeDefined();
  });

  it("health-checks with commands the image has: its node, whose scripts compile", () => {
    for (const [name, s] of modeldeployServices(compose)) {
      const test = s.healthcheck?.test;
      if (!test) continue;
      expect(test.slice(0, 3), name).toEqual(["CMD", "node", "-e"]);
      expect(() => new Script(test[3]!), name).not.toThrow();
    }
  });

  it("gives the workers the runtime's network namespace and data volume", () => {
    const worker = compose.services["worker"]!;
    expect(worker.network_mode).toBe("service:runtime");
    expect(worker.ports).toBeUndefined();
    const data = (service: string) => compose.services[service]!.volumes?.find((v) => v.startsWith("data:"));
    expect(data("worker")).toBeDefined();
    expect(data("worker")).toBe(data("runtime"));
    expect(Object.keys(compose.volumes ?? {})).toContain("data");
  });
});
