// gRPC server reflection (grpc.reflection.v1 and v1alpha,
// https://github.com/grpc/grpc/blob/master/doc/server-reflection.md) for the
// grpc-js server, answered from the file descriptors protobuf-es keeps for
// every generated file, so grpcurl & co. work without the .proto files.
// Replaces @grpc/reflection, which loads protobufjs and parses .proto files
// at start.
import type { DescEnum, DescExtension, DescFile, DescMessage, DescService, Registry } from "@bufbuild/protobuf";
import { create, createRegistry, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import * as v1 from "../gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection_pb.js";
import { grpcServiceDefinition } from "./grpc-service-definition.js";

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

/** A request of either version: their fields are the same. */
type ReflectionRequest = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;

/** The message_response of a reply, valid for either version. */
export type ReflectionAnswer =
  | { case: "fileDescriptorResponse"; value: { fileDescriptorProto: Uint8Array[] } }
  | { case: "allExtensionNumbersResponse"; value: { baseTypeName: string; extensionNumber: number[] } }
  | { case: "listServicesResponse"; value: { service: { name: string }[] } }
  | { case: "errorResponse"; value: { errorCode: number; errorMessage: string } };

const notFound = (message: string): ReflectionAnswer => ({
  case: "errorResponse",
  value: { errorCode: grpc.status.NOT_FOUND, errorMessage: message },
});

/**
 * What reflection knows: the served services, the files declaring them and
 * every file these import. Built on the first request (reflection is rare;
 * an idle server keeps none of it).
 */
export class ReflectionIndex {
  private readonly files = new Map<string, DescFile>();
  private readonly encoded = new Map<string, Uint8Array>();
  private readonly registry: Registry;

  constructor(private readonly services: readonly DescService[]) {
    const files = filesOf(services);
    for (const f of files) this.files.set(f.proto.name, f);
    this.registry = createRegistry(...files);
  }

  answer(req: ReflectionRequest): ReflectionAnswer {
    const r = req.messageRequest;
    switch (r.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: this.services.map((s) => ({ name: s.typeName })) } };
      case "fileByFilename": {
        const file = this.files.get(r.value);
        return file ? this.withDependencies(file) : notFound(`file "${r.value}" not found`);
      }
      case "fileContainingSymbol": {
        const file = this.fileContainingSymbol(r.value);
        return file ? this.withDependencies(file) : notFound(`symbol "${r.value}" not found`);
      }
      case "fileContainingExtension": {
        const { containingType, extensionNumber } = r.value;
        const extendee = this.registry.getMessage(containingType);
        const ext = extendee && this.registry.getExtensionFor(extendee, extensionNumber);
        return ext ? this.withDependencies(ext.file) : notFound(`extension ${extensionNumber} of "${containingType}" not found`);
      }
      case "allExtensionNumbersOfType": {
        if (this.registry.getMessage(r.value) === undefined) return notFound(`type "${r.value}" not found`);
        const numbers: number[] = [];
        for (const desc of this.registry) {
          if (desc.kind === "extension" && desc.extendee.typeName === r.value) numbers.push(desc.number);
        }
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: r.value, extensionNumber: numbers } };
      }
      default:
        return {
          case: "errorResponse",
          value: { errorCode: grpc.status.INVALID_ARGUMENT, errorMessage: "the request names no message_request" },
        };
    }
  }

  /**
   * The file declaring a fully qualified symbol: a message, enum, service or
   * extension (nested ones too), or a member of one: a method, field, oneof
   * or enum value (by its protobuf name, in the enum's parent scope, or under
   * the enum's name).
   */
  fileContainingSymbol(symbol: string): DescFile | undefined {
    const desc = this.registry.get(symbol);
    if (desc !== undefined) return desc.file;
    const dot = symbol.lastIndexOf(".");
    if (dot <= 0) return undefined;
    const scope = symbol.slice(0, dot);
    const member = symbol.slice(dot + 1);
    const parent = this.registry.get(scope);
    const hasValue = (enums: readonly DescEnum[]) => enums.some((e) => e.values.some((v) => v.name === member));
    switch (parent?.kind) {
      case "service":
        return parent.methods.some((m) => m.name === member) ? parent.file : undefined;
      case "message":
        return memberOfMessage(parent, member) || hasValue(parent.nestedEnums) ? parent.file : undefined;
      case "enum":
        return hasValue([parent]) ? parent.file : undefined;
      case "extension":
        return undefined;
      case undefined:
        // A top-level enum's values live in its package's scope.
        for (const file of this.files.values()) {
          if (file.proto.package === scope && hasValue(file.enums)) return file;
        }
        return undefined;
    }
  }

  /** The file, then every file it imports, transitively (each once). */
  private withDependencies(file: DescFile): ReflectionAnswer {
    const out: Uint8Array[] = [];
    const seen = new Set<string>();
    const visit = (f: DescFile) => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      out.push(this.encode(f));
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return { case: "fileDescriptorResponse", value: { fileDescriptorProto: out } };
  }

  private encode(file: DescFile): Uint8Array {
    let bytes = this.encoded.get(file.proto.name);
    if (bytes === undefined) {
      bytes = toBinary(FileDescriptorProtoSchema, file.proto);
      this.encoded.set(file.proto.name, bytes);
    }
    return bytes;
  }
}

function memberOfMessage(message: DescMessage, name: string): boolean {
  const named = (items: readonly { name: string }[]) => items.some((i) => i.name === name);
  const extensions: readonly DescExtension[] = message.nestedExtensions;
  return named(message.fields) || named(message.oneofs) || named(extensions);
}

interface ReflectionVersion {
  service: DescService;
  reply(req: ReflectionRequest, answer: ReflectionAnswer): unknown;
}

const versions: readonly ReflectionVersion[] = [
  {
    service: v1.ServerReflection,
    reply: (req, answer) =>
      create(v1.ServerReflectionResponseSchema, {
        validHost: req.host,
        originalRequest: req as v1.ServerReflectionRequest,
        messageResponse: answer,
      }),
  },
  {
    service: v1alpha.ServerReflection,
    reply: (req, answer) =>
      create(v1alpha.ServerReflectionResponseSchema, {
        validHost: req.host,
        originalRequest: req as v1alpha.ServerReflectionRequest,
        messageResponse: answer,
      }),
  },
];

export interface ReflectionOptions {
  /** Aborted when the server shuts down: open reflection streams end with UNAVAILABLE. */
  shutdownSignal?: AbortSignal;
}

/**
 * Register grpc.reflection.v1 and v1alpha ServerReflection on `server`,
 * describing `services` (e.g. ours and grpc.health.v1.Health), the
 * reflection services themselves, and every file they import.
 */
export function addReflection(server: Pick<grpc.Server, "addService">, services: readonly DescService[], opts: ReflectionOptions = {}): void {
  const described = [...services, ...versions.map((v) => v.service)];
  let index: ReflectionIndex | undefined;
  for (const version of versions) {
    const serverReflectionInfo: grpc.handleBidiStreamingCall<ReflectionRequest, unknown> = (call) => {
      const signal = opts.shutdownSignal;
      let open = true;
      const finish = (status?: Partial<grpc.StatusObject>) => {
        if (!open) return;
        open = false;
        signal?.removeEventListener("abort", onShutdown);
        if (call.cancelled) return;
        if (status !== undefined) call.emit("error", status);
        else call.end();
      };
      const onShutdown = () => finish({ code: grpc.status.UNAVAILABLE, details: "server is shutting down, reconnect" });
      if (signal?.aborted) {
        onShutdown();
        return;
      }
      signal?.addEventListener("abort", onShutdown, { once: true });
      call.once("cancelled", () => finish());
      call.once("end", () => finish());
      call.on("data", (req: ReflectionRequest) => {
        if (!open) return;
        index ??= new ReflectionIndex(described);
        // Answers can be large: stop reading while grpc-js' buffer is full.
        if (!call.write(version.reply(req, index.answer(req)))) {
          call.pause();
          call.once("drain", () => call.resume());
        }
      });
    };
    server.addService(grpcServiceDefinition(version.service), {
      serverReflectionInfo,
    } as grpc.UntypedServiceImplementation);
  }
}
