// gRPC server reflection (grpc.reflection.v1 and v1alpha) for the grpc-js
// server, fed with the file descriptors protobuf-es keeps for every
// generated file, so grpcurl & co. work without the .proto files.
import type { DescFile, DescService } from "@bufbuild/protobuf";
import { toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { Server } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";

/** The files declaring `services` and all their transitive dependencies, dependencies first. */
export function filesOf(services: readonly DescService[]): DescFile[] {
  const seen = new Set<string>();
  const out: DescFile[] = [];
  const visit = (file: DescFile) => {
    if (seen.has(file.proto.name)) return;
    seen.add(file.proto.name);
    for (const dep of file.dependencies) visit(dep);
    out.push(file);
  };
  for (const s of services) visit(s.file);
  return out;
}

/** Serialized google.protobuf.FileDescriptorProto of each file. */
export function fileDescriptorProtos(files: readonly DescFile[]): Buffer[] {
  return files.map((f) => {
    const bytes = toBinary(FileDescriptorProtoSchema, f.proto);
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  });
}

type ReflectionPackage = ConstructorParameters<typeof ReflectionService>[0];

/**
 * Register grpc.reflection.v1 and v1alpha ServerReflection on `server`,
 * describing `services` (and their dependencies) plus any extra serialized
 * FileDescriptorProtos (e.g. grpc.health.v1).
 *
 * Limits (of @grpc/reflection 1.0): list_services returns every service found
 * in the given files (not the reflection service itself); descriptors are
 * re-encoded through protobufjs, and the file dependency graph it reports is
 * computed from type references rather than the files' import lists.
 */
export function addReflection(
  server: Pick<Server, "addService">,
  services: readonly DescService[],
  extraFileDescriptorProtos: readonly Buffer[] = [],
): void {
  const protos = [...fileDescriptorProtos(filesOf(services)), ...extraFileDescriptorProtos];
  // ReflectionService only reads `fileDescriptorProtos` of each value.
  const pkg = {
    "modeldeploy.reflection": {
      format: "Protocol Buffer 3 DescriptorProto",
      type: {},
      fileDescriptorProtos: protos,
    },
  } as unknown as ReflectionPackage;
  new ReflectionService(pkg).addToServer(server);
}
