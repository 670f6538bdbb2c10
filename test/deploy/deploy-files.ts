// Reading deploy/ for its tests: YAML files, the kustomize output (kubectl
// when this host has it), the Dockerfile's instructions, and each
// modeldeploy container's environment as the configuration module sees it.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { parseAllDocuments } from "yaml";

export const root = path.resolve(import.meta.dirname, "../..");
export const deployDir = path.join(root, "deploy");
export const k8sDir = path.join(deployDir, "k8s");

/** The YAML documents of a file (compose's `<<` merge keys resolved); a syntax error or warning fails. */
export function readYaml(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, "utf8"), { merge: true, prettyErrors: true });
  const list = Array.isArray(docs) ? docs : [docs];
  for (const doc of list) {
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) throw new Error(`${path.relative(root, file)}: ${problems.map((p) => p.message).join("; ")}`);
  }
  return list.map((doc) => doc.toJS() as unknown).filter((d) => d !== null && d !== undefined);
}

// --- Kubernetes objects -----------------------------------------------------

export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string; optional?: boolean }; configMapKeyRef?: { name: string; key: string } };
}

export interface Probe {
  grpc?: { port: number; service?: string };
  httpGet?: { path?: string; port: number | string };
  tcpSocket?: { port: number | string };
  exec?: unknown;
}

export interface Container {
  name: string;
  image?: string;
  args?: string[];
  command?: string[];
  env?: EnvVar[];
  envFrom?: Array<{ configMapRef?: { name: string }; secretRef?: { name: string } }>;
  ports?: Array<{ name?: string; containerPort: number }>;
  startupProbe?: Probe;
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; runAsNonRoot?: boolean; runAsUser?: number };
  volumeMounts?: Array<{ name: string; mountPath: string }>;
}

export interface PodSpec {
  containers: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; runAsGroup?: number };
  volumes?: Array<{ name: string }>;
}

export interface PodTemplate {
  metadata?: { labels?: Record<string, string> };
  spec: PodSpec;
}

export function isK8sObject(value: unknown): value is K8sObject {
  const v = value as Partial<K8sObject> | null;
  return typeof v === "object" && v !== null && typeof v.apiVersion === "string" && typeof v.kind === "string" && typeof v.metadata?.name === "string";
}

/** The pod template of a Deployment or Job, undefined for other kinds. */
export function podTemplate(obj: K8sObject): PodTemplate | undefined {
  if (obj.kind !== "Deployment" && obj.kind !== "Job") return undefined;
  return obj.spec?.["template"] as PodTemplate;
}

/** True when `kubectl` answers here (its `kustomize` builds what `kubectl apply -k` applies). */
export function kubectlAvailable(): boolean {
  const r = spawnSync("kubectl", ["version", "--client"], { encoding: "utf8", timeout: 60_000 });
  return r.status === 0;
}

/** `kubectl kustomize DIR`: every object the directory applies. */
export function kustomizeBuild(dir: string): K8sObject[] {
  const r = spawnSync("kubectl", ["kustomize", dir], { encoding: "utf8", timeout: 60_000 });
  if (r.status !== 0) throw new Error(`kubectl kustomize ${path.relative(root, dir)} failed: ${r.stderr}`);
  const docs = parseAllDocuments(r.stdout);
  return (Array.isArray(docs) ? docs : [docs]).map((d) => d.toJS() as unknown).filter(isK8sObject);
}

export interface Kustomization {
  resources?: string[];
  patches?: Array<{ path?: string; patch?: string }>;
  images?: Array<{ name: string; newName?: string; newTag?: string }>;
  namespace?: string;
}

export function readKustomization(dir: string): Kustomization {
  const [k] = readYaml(path.join(dir, "kustomization.yaml"));
  return k as Kustomization;
}

/**
 * The objects a kustomization lists, read file by file (resources that are
 * directories are read the same way); no patches, images or namespace applied.
 */
export function kustomizationResources(dir: string): K8sObject[] {
  const out: K8sObject[] = [];
  for (const entry of readKustomization(dir).resources ?? []) {
    const target = path.join(dir, entry);
    if (existsSync(path.join(target, "kustomization.yaml"))) out.push(...kustomizationResources(target));
    else out.push(...readYaml(target).filter(isK8sObject));
  }
  return out;
}

// --- Dockerfile -------------------------------------------------------------

export interface Instruction {
  keyword: string;
  args: string;
}

export interface Stage {
  from: string;
  name: string | undefined;
  instructions: Instruction[];
}

/** Instructions of a Dockerfile (comments dropped, `\` continuations joined), by build stage. */
export function readDockerfile(file: string): { args: Instruction[]; stages: Stage[] } {
  const lines = readFileSync(file, "utf8").split("\n");
  const instructions: Instruction[] = [];
  let pending = "";
  for (const raw of lines) {
    const line = raw.trim();
    if (line.startsWith("#") || (line === "" && pending === "")) continue;
    pending += (pending ? " " : "") + line.replace(/\\$/, "").trim();
    if (line.endsWith("\\")) continue;
    const m = /^(\S+)\s*(.*)$/.exec(pending);
    if (m) instructions.push({ keyword: m[1]!.toUpperCase(), args: m[2]! });
    pending = "";
  }
  const args: Instruction[] = [];
  const stages: Stage[] = [];
  for (const ins of instructions) {
    if (ins.keyword === "FROM") {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      stages.push({ from: m?.[1] ?? ins.args, name: m?.[2], instructions: [] });
    } else if (stages.length === 0) args.push(ins);
    else stages[stages.length - 1]!.instructions.push(ins);
  }
  return { args, stages };
}

/** `ENV A=1 B=2` (or `ENV A 1`) as name → value. */
export function envOf(stage: Stage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const ins of stage.instructions.filter((i) => i.keyword === "ENV")) {
    const pairs = [...ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)];
    if (pairs.length === 0) {
      const [name, ...value] = ins.args.split(/\s+/);
      out[name!] = value.join(" ");
    }
    for (const [, name, value] of pairs) out[name!] = value!.replace(/^"|"$/g, "");
  }
  return out;
}

// --- compose ----------------------------------------------------------------

export interface ComposeService {
  image?: string;
  build?: { context: string; dockerfile?: string };
  command?: string[];
  environment?: Record<string, string | number | boolean | null>;
  ports?: string[];
  volumes?: string[];
  network_mode?: string;
  depends_on?: Record<string, { condition: string; restart?: boolean }>;
  healthcheck?: { test: string[] };
  deploy?: { replicas?: number };
}

export interface ComposeFile {
  services: Record<string, ComposeService>;
  volumes?: Record<string, unknown>;
}

export const composeFile = path.join(deployDir, "compose.yaml");

export function readCompose(): ComposeFile {
  const [doc] = readYaml(composeFile);
  return doc as ComposeFile;
}

/** Services that run this project's image (built from deploy/Dockerfile). */
export function modeldeployServices(compose: ComposeFile): Array<[string, ComposeService]> {
  return Object.entries(compose.services).filter(([, s]) => s.build?.dockerfile === "deploy/Dockerfile");
}

/** `${VAR:-default}` as compose would interpolate it with VAR unset. */
export function interpolateUnset(value: string): string {
  return value.replace(/\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}/g, (_m, fallback: string | undefined) => fallback ?? "");
}
