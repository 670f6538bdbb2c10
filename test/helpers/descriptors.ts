// File descriptors as reflection returns them, for tests that rebuild a registry.
import type { FileDescriptorProto } from "@bufbuild/protobuf/wkt";

/** Order files so that every file comes after its imports (createFileRegistry needs them so). */
export function dependenciesFirst(files: FileDescriptorProto[]): FileDescriptorProto[] {
  const byName = new Map(files.map((f) => [f.name, f]));
  const out: FileDescriptorProto[] = [];
  const seen = new Set<string>();
  const visit = (f: FileDescriptorProto) => {
    if (seen.has(f.name)) return;
    seen.add(f.name);
    for (const d of f.dependency) {
      const dep = byName.get(d);
      if (dep !== undefined) visit(dep);
    }
    out.push(f);
  };
  files.forEach(visit);
  return out;
}
