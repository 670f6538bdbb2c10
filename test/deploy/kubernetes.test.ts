// deploy/k8s: every manifest validates against the Kubernetes API schema
// (kubernetes-models: validators generated from Kubernetes' OpenAPI), the
// kustomizations build (kubectl kustomize, when this host has kubectl; else
// file by file), and the objects fit together: probes, requests, Services,
// the PodDisruptionBudget and the NetworkPolicy select what they mean to.
import { existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import {
  type Container,
  isK8sObject,
  type K8sObject,
  k8sDir,
  kubectlAvailable,
  kustomizationResources,
  kustomizeBuild,
  podTemplate,
  readKustomization,
  readYaml,
  root,
} from "./deploy-files.js";
import { unknownFieldErrors } from "./kubernetes-fields.js";

const baseDir = path.join(k8sDir, "base");
const overlaysDir = path.join(k8sDir, "overlays");
const overlays = readdirSync(overlaysDir).map((name) => path.join(overlaysDir, name));
const hasKubectl = kubectlAvailable();

type Model = new (data: unknown) => { validate(): void };

/** Validates one object with the kubernetes-models class of its apiVersion and kind; resolves to the schema's complaint, or "". */
async function schemaErrors(obj: K8sObject): Promise<string> {
  const group = obj.apiVersion; // "v1", "apps/v1", "networking.k8s.io/v1", …
  let model: Model | undefined;
  try {
    model = ((await import(/* @vite-ignore */ `kubernetes-models/${group}/${obj.kind}`)) as Record<string, Model>)[obj.kind];
  } catch {
    return `${obj.kind} ${obj.metadata.name}: no schema for ${group} ${obj.kind}`;
  }
  if (!model) return `${obj.kind} ${obj.metadata.name}: no schema for ${group} ${obj.kind}`;
  try {
    new model(obj).validate();
    return "";
  } catch (err) {
    return `${obj.kind} ${obj.metadata.name}: ${(err as Error).message}`;
  }
}

/** What `kubectl apply -k DIR` applies: kustomize's output, or (without kubectl) the listed files as they are. */
function objectsOf(dir: string): K8sObject[] {
  return hasKubectl ? kustomizeBuild(dir) : kustomizationResources(dir);
}

const find = (objects: K8sObject[], kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name);

function containerOf(objects: K8sObject[], kind: string, name: string, container: string): Container {
  const obj = find(objects, kind, name);
  const c = obj && podTemplate(obj)?.spec.containers.find((x) => x.name === container);
  if (!c) throw new Error(`no container ${container} in ${kind} ${name}`);
  return c;
}

const portNumber = (c: Container, name: string) => c.ports?.find((p) => p.name === name)?.containerPort;

const matches = (selector: Record<string, string>, labels: Record<string, string> | undefined) => Object.entries(selector).every(([k, v]) => labels?.[k] === v);

describe("kustomizations", () => {
  it("list files that exist, and every resource file of the base is listed", () => {
    for (const dir of [baseDir, ...overlays]) {
      const k = readKustomization(dir);
      for (const entry of [...(k.resources ?? []), ...(k.patches ?? []).flatMap((p) => (p.path ? [p.path] : []))]) {
        expect(existsSync(path.join(dir, entry)), `${path.relative(root, dir)}: ${entry}`).toBe(true);
      }
    }
    const listed = new Set(readKustomization(baseDir).resources);
    const files = readdirSync(baseDir).filter((f) => f.endsWith(".yaml") && f !== "kustomization.yaml");
    expect(files.filter((f) => !listed.has(f))).toEqual([]);
  });

  it("patch only objects the base has (kind and name)", () => {
    const base = kustomizationResources(baseDir);
    for (const dir of overlays) {
      for (const patch of readKustomization(dir).patches ?? []) {
        expect(patch.path, "patches are files").toBeDefined();
        for (const obj of readYaml(path.join(dir, patch.path!))) {
          expect(isK8sObject(obj)).toBe(true);
          const target = obj as K8sObject;
          expect(find(base, target.kind, target.metadata.name), `${patch.path}: ${target.kind} ${target.metadata.name}`).toBeDefined();
        }
      }
    }
  });

  it.runIf(hasKubectl)("build with kubectl kustomize; the overlay sets its namespace and image", () => {
    const base = kustomizeBuild(baseDir);
    expect(base.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      kustomizationResources(baseDir)
        .map((o) => `${o.kind}/${o.metadata.name}`)
        .sort(),
    );
    for (const dir of overlays) {
      const k = readKustomization(dir);
      const built = kustomizeBuild(dir);
      for (const obj of built.filter((o) => o.kind !== "Namespace")) expect(obj.metadata.namespace, `${obj.kind} ${obj.metadata.name}`).toBe(k.namespace);
      const image = k.images?.find((i) => i.name === "modeldeploy");
      for (const obj of built) {
        for (const c of podTemplate(obj)?.spec.containers ?? []) expect(c.image).toBe(`${image?.newName}:${image?.newTag}`);
      }
    }
  });
});

describe("every manifest", () => {
  it("validates against the Kubernetes API schema: each base file, and what each kustomization applies", async () => {
    const sets: Array<[string, K8sObject[]]> = [["base files", kustomizationResources(baseDir)]];
    for (const dir of [baseDir, ...overlays]) sets.push([path.relative(root, dir), objectsOf(dir)]);
    for (const [what, objects] of sets) {
      expect(objects.length, what).toBeGreaterThan(0);
      const errors = (await Promise.all(objects.map(schemaErrors))).filter(Boolean);
      expect(errors, what).toEqual([]);
    }
  });

  it("has only fields Kubernetes knows (kubernetes-types), as the API server's strict field validation requires", () => {
    for (const dir of [baseDir, ...overlays]) expect(unknownFieldErrors(objectsOf(dir)), path.relative(root, dir)).toEqual([]);
  });

  it("the field check catches a misspelt field and a value of the wrong type", () => {
    const [api] = readYaml(path.join(baseDir, "api-deployment.yaml")) as K8sObject[];
    const broken = (change: (container: Record<string, unknown>) => void) => {
      const copy = structuredClone(api!);
      change(podTemplate(copy)!.spec.containers[0] as unknown as Record<string, unknown>);
      return unknownFieldErrors([copy]).join("\n");
    };
    expect(broken((c) => (c["readinesProbe"] = { grpc: { port: 50051 } }))).toMatch(
      /Deployment modeldeploy-api: .*'"readinesProbe"' does not exist in type 'Container'/,
    );
    expect(broken((c) => (c["args"] = "api"))).toMatch(/Deployment modeldeploy-api: Type 'string' is not assignable to type 'string\[\]'/);
  });

  it("the schema check catches a broken manifest (a probe on a named gRPC port, a missing selector)", async () => {
    const [api] = readYaml(path.join(baseDir, "api-deployment.yaml")) as K8sObject[];
    const broken = structuredClone(api!);
    podTemplate(broken)!.spec.containers[0]!.readinessProbe = { grpc: { port: "grpc" as unknown as number } };
    expect(await schemaErrors(broken)).toMatch(/readinessProbe\/grpc\/port must be integer/);
    const noSelector = structuredClone(api!);
    delete noSelector.spec!["selector"];
    expect(await schemaErrors(noSelector)).toMatch(/selector/);
  });
});

describe.each([baseDir, ...overlays].map((dir) => [path.relative(root, dir), dir] as const))("%s", (_name, dir) => {
  const objects = objectsOf(dir);
  const workloads = objects.filter((o) => podTemplate(o) !== undefined);

  it("has the API and worker Deployments, the migration Job, both Services, a PodDisruptionBudget and a NetworkPolicy", () => {
    for (const [kind, name] of [
      ["Deployment", "modeldeploy-api"],
      ["Deployment", "modeldeploy-worker"],
      ["Job", "modeldeploy-migrate"],
      ["Service", "modeldeploy-api"],
      ["Service", "modeldeploy-gateway"],
      ["PodDisruptionBudget", "modeldeploy-api"],
      ["NetworkPolicy", "modeldeploy"],
      ["ConfigMap", "modeldeploy"],
    ] as const) {
      expect(find(objects, kind, name), `${kind} ${name}`).toBeDefined();
    }
  });

  it("runs each role of the image as a non-root user, with requests and a memory limit", () => {
    const roles = new Map<string, string>();
    for (const obj of workloads) {
      const spec = podTemplate(obj)!.spec;
      expect(spec.securityContext, obj.metadata.name).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      for (const c of spec.containers) {
        roles.set(c.args?.[0] ?? "", `${obj.metadata.name}/${c.name}`);
        expect(c.command, "the image's entrypoint runs the role").toBeUndefined();
        expect(c.resources?.requests, c.name).toEqual({ cpu: expect.any(String), memory: expect.any(String) });
        expect(c.resources?.limits?.["memory"], c.name).toEqual(expect.any(String));
        expect(c.securityContext, c.name).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true });
      }
    }
    expect([...roles.keys()].sort()).toEqual(["api", "migrate", "runtime", "worker"]);
  });

  it("probes the API with grpc.health.v1 on its gRPC port, and the runtime on its gateway's /healthz", () => {
    const api = containerOf(objects, "Deployment", "modeldeploy-api", "api");
    const grpcPort = portNumber(api, "grpc");
    expect(grpcPort).toBeDefined();
    for (const probe of [api.startupProbe, api.readinessProbe, api.livenessProbe]) expect(probe).toEqual(expect.objectContaining({ grpc: { port: grpcPort } }));
    const runtime = containerOf(objects, "Deployment", "modeldeploy-worker", "runtime");
    for (const probe of [runtime.startupProbe, runtime.readinessProbe, runtime.livenessProbe]) {
      expect(probe).toEqual(expect.objectContaining({ httpGet: { path: "/healthz", port: "gateway" } }));
    }
    expect(portNumber(runtime, "gateway")).toBeDefined();
  });

  it("keeps one worker pod, replaced whole: the runtime's model servers are its own", () => {
    const worker = find(objects, "Deployment", "modeldeploy-worker")!;
    expect(worker.spec).toMatchObject({ replicas: 1, strategy: { type: "Recreate" } });
    // The runtime's control API has no authentication: no Service, no container port.
    const runtime = containerOf(objects, "Deployment", "modeldeploy-worker", "runtime");
    expect(runtime.ports?.map((p) => p.name)).toEqual(["gateway"]);
  });

  it("points Services, the PodDisruptionBudget and the NetworkPolicy at pods and ports that exist", () => {
    const pods = workloads.map((o) => ({ name: o.metadata.name, labels: podTemplate(o)!.metadata?.labels, spec: podTemplate(o)!.spec }));
    for (const svc of objects.filter((o) => o.kind === "Service")) {
      const spec = svc.spec as { selector: Record<string, string>; ports: Array<{ targetPort: string | number }> };
      const selected = pods.filter((p) => matches(spec.selector, p.labels));
      expect(
        selected.map((p) => p.name),
        svc.metadata.name,
      ).toHaveLength(1);
      const portNames = selected[0]!.spec.containers.flatMap((c) => c.ports ?? []).map((p) => p.name);
      for (const port of spec.ports) expect(portNames, `${svc.metadata.name} → ${port.targetPort}`).toContain(port.targetPort);
    }
    const pdb = find(objects, "PodDisruptionBudget", "modeldeploy-api")!.spec as { minAvailable: number; selector: { matchLabels: Record<string, string> } };
    const api = find(objects, "Deployment", "modeldeploy-api")!;
    expect(matches(pdb.selector.matchLabels, podTemplate(api)!.metadata?.labels)).toBe(true);
    expect(pdb.minAvailable).toBeLessThan(api.spec!["replicas"] as number);
    const policy = find(objects, "NetworkPolicy", "modeldeploy")!.spec as {
      podSelector: { matchLabels: Record<string, string> };
      ingress: Array<{ ports: Array<{ port: string }> }>;
    };
    expect(pods.filter((p) => !matches(policy.podSelector.matchLabels, p.labels)).map((p) => p.name)).toEqual([]);
    const allowed = policy.ingress.flatMap((rule) => rule.ports.map((p) => p.port)).sort();
    const served = [
      ...new Set(
        pods
          .flatMap((p) => p.spec.containers)
          .flatMap((c) => c.ports ?? [])
          .map((p) => p.name),
      ),
    ].sort();
    expect(allowed).toEqual(served);
  });

  it("mounts only volumes the pod has", () => {
    for (const obj of workloads) {
      const spec = podTemplate(obj)!.spec;
      const volumes = new Set(spec.volumes?.map((v) => v.name));
      for (const c of spec.containers)
        for (const m of c.volumeMounts ?? []) expect(volumes.has(m.name), `${obj.metadata.name}/${c.name}: ${m.name}`).toBe(true);
    }
  });
});
