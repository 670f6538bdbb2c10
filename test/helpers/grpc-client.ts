// A plain @grpc/grpc-js client for the services, promisified, as a
// service-to-service caller would use it.
import * as grpc from "@grpc/grpc-js";
import type { DescService } from "@bufbuild/protobuf";
import { grpcServiceDefinition } from "../../src/api/grpc-server.js";

export type GrpcClient = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

export function grpcClient(service: DescService, address: string): GrpcClient {
  const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(service), service.name);
  return new Ctor(address, grpc.credentials.createInsecure()) as unknown as GrpcClient;
}

export function unary<T>(client: GrpcClient, method: string, request: unknown, apiKey?: string): Promise<T> {
  const md = new grpc.Metadata();
  if (apiKey) md.set("authorization", `Bearer ${apiKey}`);
  return new Promise((resolve, reject) => {
    (client[method] as (req: unknown, md: grpc.Metadata, cb: (err: grpc.ServiceError | null, res: T) => void) => void)(request, md, (err, res) =>
      err ? reject(err) : resolve(res),
    );
  });
}

export function serverStream<T>(client: GrpcClient, method: string, request: unknown, apiKey?: string): grpc.ClientReadableStream<T> {
  const md = new grpc.Metadata();
  if (apiKey) md.set("authorization", `Bearer ${apiKey}`);
  return (client[method] as (req: unknown, md: grpc.Metadata) => grpc.ClientReadableStream<T>)(request, md);
}
