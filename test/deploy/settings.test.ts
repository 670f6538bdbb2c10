// deploy/ uses exactly the settings the README documents: every variable the
// Dockerfile, the compose file and the Kubernetes manifests set is one the
// configuration module reads and the README's table lists, each container's
// environment passes the module's own validation (loadConfig), and the
// ports, hosts and URLs the files wire together are the ones that
// configuration makes each role use.
import { readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { type Config, configVariables, loadConfig } from "../../src/config.js";
import { documentedDefaults, documentedVariables } from "../helpers/readme-config.js";
import {
  type ComposeService,
  type Container,
  deployDir,
  envOf,
  interpolateUnset,
  type K8sObject,
  k8sDir,
  kubectlAvailable,
  kustomizationResources,
  kustomizeBuild,
  modeldeployServices,
  type PodTemplate,
  podTemplate,
  readCompose,
  readDockerfile,
  root,
} from "./deploy-files.js";

const read = new Set(configVariables());
const documented = documentedVariables();
const defaults = documentedDefaults();

/** What a Secret holds in a real deployment; valid stand-ins for loadConfig. */
const SECRET_STAND_INS: Record<string, string> = {
  DATABASE_URL: "postgres://modeldeploy:secret@postgres:5432/modeldeploy",
  MODELDEPLOY_SECRET_KEY: Buffer.alloc(32, 7).toString("base64"),
};

const dockerfile = readDockerfile(path.join(deployDir, "Dockerfile"));
const finalStage = dockerfile.stages[dockerfile.stages.length - 1]!;
const imageEnv = envOf(finalStage);

interface RoleEnv {
  where: string;
  role: string;
  env: Record<string, string>;
}

function expectOnlySettings(where: string, names: Iterable<string>): void {
  const unknown = [...names].filter((n) => !(read.has(n) && documented.has(n)));
  expect(unknown, `${where}: variables the configuration module does not read or the README does not document`).toEqual([]);
}

/** loadConfig on a container's environment: an invalid value fails here as it would at the process' start. */
function configOf({ where, env }: RoleEnv): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    throw new Error(`${where}: ${(err as Error).message}`);
  }
}

const defaultPort = (name: string) => Number(defaults.get(name));

describe("the README's documented ports", () => {
  it("are the configuration module's defaults", () => {
    const c = loadConfig({});
    expect([c.grpcPort, c.httpPort, c.gatewayPort, c.runtimeControlPort]).toEqual(
      ["MODELDEPLOY_GRPC_PORT", "MODELDEPLOY_HTTP_PORT", "MODELDEPLOY_GATEWAY_PORT", "MODELDEPLOY_RUNTIME_CONTROL_PORT"].map(defaultPort),
    );
  });
});

describe("Dockerfile", () => {
  it("sets only settings (in the image every role runs)", () => {
    expectOnlySettings("deploy/Dockerfile", Object.keys(imageEnv));
    expect(() => loadConfig(imageEnv)).not.toThrow();
  });
});

/** Checks one deployment's roles (from compose or Kubernetes) against what their configuration makes them do. */
function checkRoles(roles: RoleEnv[], ports: (r: RoleEnv) => Record<string, number | undefined>, dataMount: (r: RoleEnv) => string | undefined): void {
  for (const r of roles) expectOnlySettings(r.where, Object.keys(r.env));
  const byRole = (role: string) => {
    const found = roles.filter((r) => r.role === role);
    expect(found.length, role).toBeGreaterThan(0);
    return found;
  };
  for (const r of [...byRole("api"), ...byRole("worker"), ...byRole("migrate")]) {
    const c = configOf(r);
    // `api`, `worker` and `migrate` refuse to embed Postgres or NATS.
    expect(c.databaseUrl, r.where).toBeDefined();
    expect(c.natsUrl, r.where).toBeDefined();
  }
  for (const r of byRole("api")) {
    const c = configOf(r);
    expect([c.grpcHost, c.httpHost], `${r.where}: reachable from outside its container`).toEqual(["0.0.0.0", "0.0.0.0"]);
    expect(ports(r), r.where).toEqual({ grpc: c.grpcPort, http: c.httpPort });
    expect([c.grpcPort, c.httpPort]).toEqual([defaultPort("MODELDEPLOY_GRPC_PORT"), defaultPort("MODELDEPLOY_HTTP_PORT")]);
  }
  const [runtime, ...more] = byRole("runtime");
  expect(more, "one runtime").toEqual([]);
  const rc = configOf(runtime!);
  expect(rc.gatewayHost).toBe("0.0.0.0");
  expect(rc.gatewayPublicUrl, "endpoint URLs name an address clients reach").toMatch(/^http:\/\/[^/]+:\d+$/);
  expect(new URL(rc.gatewayPublicUrl!).hostname).not.toBe("0.0.0.0");
  expect(rc.runtimeControlHost, "the control API has no authentication: loopback only").toBe("127.0.0.1");
  expect(ports(runtime!)).toEqual({ gateway: rc.gatewayPort });
  expect(rc.gatewayPort).toBe(defaultPort("MODELDEPLOY_GATEWAY_PORT"));
  expect(dataMount(runtime!), "the runtime's data directory is a volume").toBe(rc.dataDir);
  for (const w of byRole("worker")) {
    const wc = configOf(w);
    expect(wc.runtimeControlUrl, w.where).toBe(`http://127.0.0.1:${rc.runtimeControlPort}`);
    expect(wc.dataDir, `${w.where}: shares the runtime's data directory (weights cache)`).toBe(rc.dataDir);
    expect(dataMount(w), w.where).toBe(wc.dataDir);
  }
}

describe("compose.yaml", () => {
  const compose = readCompose();
  const services = modeldeployServices(compose);
  const roles: RoleEnv[] = services.map(([name, s]) => ({
    where: `compose ${name}`,
    role: s.command?.[0] ?? "",
    env: {
      ...imageEnv,
      ...Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, interpolateUnset(String(v ?? ""))])),
    },
  }));
  const service = (r: RoleEnv): ComposeService => compose.services[r.where.replace("compose ", "")]!;

  /** Container ports this service publishes, named for the setting they serve. */
  function published(r: RoleEnv): Record<string, number | undefined> {
    const targets = (service(r).ports ?? []).map((p) => Number(p.split(":").pop()));
    const c = configOf(r);
    if (r.role === "api") return { grpc: targets.find((t) => t === c.grpcPort), http: targets.find((t) => t === c.httpPort) };
    if (r.role === "runtime") return { gateway: targets.find((t) => t === c.gatewayPort) };
    return {};
  }

  function dataVolume(r: RoleEnv): string | undefined {
    const mounts = (service(r).volumes ?? []).map((v) => v.split(":"));
    return mounts.find(([source]) => source === "data")?.[1];
  }

  it("sets only documented settings, valid ones, and wires the roles together", () => {
    checkRoles(roles, published, dataVolume);
  });

  it("health-checks the API and the runtime on the ports their configuration opens", () => {
    for (const r of roles.filter((x) => x.role === "api" || x.role === "runtime")) {
      const c = configOf(r);
      const url = /http:\/\/[^'"\s)]+/.exec(service(r).healthcheck?.test.join(" ") ?? "")?.[0];
      expect(url, r.where).toBe(`http://127.0.0.1:${r.role === "api" ? c.httpPort : c.gatewayPort}/healthz`);
    }
  });

  it("publishes each port on the same number of the host's loopback (the README's addresses)", () => {
    for (const [name, s] of services) for (const p of s.ports ?? []) expect(p, name).toMatch(/^127\.0\.0\.1:(\d+):\1$/);
  });
});

const overlays = readdirSync(path.join(k8sDir, "overlays")).map((name) => path.join(k8sDir, "overlays", name));

describe.each([path.join(k8sDir, "base"), ...overlays].map((dir) => [path.relative(root, dir), dir] as const))("%s", (name, dir) => {
  const objects: K8sObject[] = kubectlAvailable() ? kustomizeBuild(dir) : kustomizationResources(dir);
  const configMaps = new Map(objects.filter((o) => o.kind === "ConfigMap").map((o) => [o.metadata.name, o.data ?? {}]));
  const containers: Array<{ r: RoleEnv; c: Container; pod: PodTemplate; obj: K8sObject }> = [];
  for (const obj of objects) {
    const pod = podTemplate(obj);
    for (const c of pod?.spec.containers ?? []) {
      const env: Record<string, string> = { ...imageEnv };
      for (const from of c.envFrom ?? []) {
        expect(from.configMapRef, "settings come from a ConfigMap (secrets one by one)").toBeDefined();
        const data = configMaps.get(from.configMapRef!.name);
        expect(data, `ConfigMap ${from.configMapRef!.name}`).toBeDefined();
        Object.assign(env, data);
      }
      for (const e of c.env ?? []) {
        if (e.value !== undefined) env[e.name] = e.value;
        else {
          expect(e.valueFrom?.secretKeyRef, `${obj.metadata.name}/${c.name} ${e.name}`).toBeDefined();
          expect(Object.keys(SECRET_STAND_INS), "only secrets come from Secrets").toContain(e.name);
          env[e.name] = SECRET_STAND_INS[e.name]!;
        }
      }
      containers.push({ r: { where: `${name} ${obj.metadata.name}/${c.name}`, role: c.args?.[0] ?? "", env }, c, pod: pod!, obj });
    }
  }
  const entry = (r: RoleEnv) => containers.find((x) => x.r === r)!;

  function containerPorts(r: RoleEnv): Record<string, number | undefined> {
    return Object.fromEntries((entry(r).c.ports ?? []).map((p) => [p.name ?? String(p.containerPort), p.containerPort]));
  }

  /** Where the pod's volume "data" is mounted in this container. */
  function dataVolume(r: RoleEnv): string | undefined {
    return entry(r).c.volumeMounts?.find((m) => m.name === "data")?.mountPath;
  }

  it("sets only documented settings, valid ones, and wires the roles together", () => {
    checkRoles(
      containers.map((x) => x.r),
      containerPorts,
      dataVolume,
    );
  });

  it("gives every process longer than its shutdown grace to stop", () => {
    for (const { r, pod } of containers) {
      const seconds = (pod.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds ?? 30;
      expect(seconds * 1000, r.where).toBeGreaterThan(configOf(r).shutdownGraceMs);
    }
  });

  it("puts the worker beside the runtime, in its pod (loopback control API, one data volume)", () => {
    const worker = containers.filter((x) => x.r.role === "worker");
    const runtime = containers.find((x) => x.r.role === "runtime")!;
    for (const w of worker) expect(w.obj, w.r.where).toBe(runtime.obj);
  });
});
