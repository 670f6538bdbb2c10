// Unknown fields in Kubernetes objects. The API server refuses them (strict
// field validation), but the OpenAPI schema kubernetes-models validates with
// allows any: so each object is type-checked as an object literal of its
// kubernetes-types type, and TypeScript's excess-property check names every
// field Kubernetes does not have (a misspelt `readinesProbe`, say).
import path from "node:path";
import ts from "typescript";
import { type K8sObject, root } from "./deploy-files.js";

/** kubernetes-types' module for an apiVersion: "v1" → core/v1, "networking.k8s.io/v1" → networking/v1. */
function typesModule(apiVersion: string): string {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : ["core", apiVersion];
  return `kubernetes-types/${group!.split(".")[0]}/${version}`;
}

/** TypeScript's complaints about the objects, each prefixed with the object's kind and name ([] when none). */
export function unknownFieldErrors(objects: K8sObject[]): string[] {
  // A file in the project, so that kubernetes-types resolves from its node_modules; only in memory.
  const file = path.join(root, "test/deploy/__manifests__.ts");
  const lines: string[] = [];
  const objectAtLine: Array<K8sObject | undefined> = [];
  objects.forEach((obj, i) => {
    lines.push(`import type { ${obj.kind} as T${i} } from "${typesModule(obj.apiVersion)}";`);
    objectAtLine.push(undefined);
    for (const line of `export const o${i}: T${i} = ${JSON.stringify(obj, null, 1)};`.split("\n")) {
      lines.push(line);
      objectAtLine.push(obj);
    }
  });
  const source = lines.join("\n");
  const options: ts.CompilerOptions = {
    strict: true,
    noEmit: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.ESNext,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    types: [],
    skipLibCheck: true,
  };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, language, ...rest) => (name === file ? ts.createSourceFile(name, source, language) : getSourceFile(name, language, ...rest));
  host.fileExists = (name) => name === file || fileExists(name);
  host.readFile = (name) => (name === file ? source : readFile(name));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, " ");
    if (d.file === undefined || d.start === undefined) return message;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const obj = objectAtLine[line];
    return `${obj ? `${obj.kind} ${obj.metadata.name}` : lines[line]}: ${message}`;
  });
}
