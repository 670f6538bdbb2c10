// grpc-js service definitions for protobuf-es service descriptors: the
// (de)serializers are protobuf-es on both sides, so no .proto file is parsed
// at run time (protobufjs / proto-loader are never loaded by the server).
import type { DescMessage, DescService, MessageShape } from "@bufbuild/protobuf";
import { create, fromBinary, isMessage, toBinary } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";

/**
 * A grpc-js ServiceDefinition for a protobuf-es service descriptor, with
 * protobuf-es (de)serializers on both sides: use it for grpc-js clients
 * (`grpc.makeGenericClientConstructor(grpcServiceDefinition(S), S.name)`)
 * and for services served with parsed messages (health, reflection).
 * Callers may pass message init objects; they receive protobuf-es messages.
 */
export function grpcServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const method of service.methods) {
    def[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (value) => serializeMessage(method.input, value),
      requestDeserialize: (bytes) => fromBinary(method.input, bytes),
      responseSerialize: (value) => serializeMessage(method.output, value),
      responseDeserialize: (bytes) => fromBinary(method.output, bytes),
      originalName: method.name,
    };
  }
  return def;
}

/** A message (or a message init object) of `schema` as a Buffer, without copying. */
export function serializeMessage(schema: DescMessage, value: unknown): Buffer {
  const msg = isMessage(value, schema) ? value : create(schema, value as never);
  const bytes = toBinary(schema, msg as MessageShape<DescMessage>);
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
