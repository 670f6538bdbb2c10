// gRPC server reflection (src/api/reflection.ts) on the grpc-js server,
// driven over its bidi stream by a plain grpc-js client built from our
// generated descriptors, in both versions (v1 and v1alpha).
import type { DescService } from "@bufbuild/protobuf";
import { create, createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, FileDescriptorSetSchema, type FileDescriptorProto } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createGrpcServer, grpcServiceDefinition, type GrpcServer } from "../../src/api/grpc-server.js";
import * as v1 from "../../src/gen/grpc/reflection/v1/reflection_pb.js";
import * as v1alpha from "../../src/gen/grpc/reflection/v1alpha/reflection_pb.js";
import { DeletionService } from "../../src/gen/modeldeploy/v1/deletion_service_pb.js";
import { DeploymentService } from "../../src/gen/modeldeploy/v1/deployment_service_pb.js";
import { createLogger } from "../../src/log.js";
import { dependenciesFirst } from "../helpers/descriptors.js";

type Request = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;
type Response = v1.ServerReflectionResponse | v1alpha.ServerReflectionResponse;
type RequestInit = {
  host?: string;
  messageRequest: Request["messageRequest"] | { case: "fileContainingExtension"; value: { containingType: string; extensionNumber: number } };
};

const logger = createLogger({ level: "error", write: () => {} });

const versions: { name: string; service: DescService }[] = [
  { name: "v1", service: v1.ServerReflection },
  { name: "v1alpha", service: v1alpha.ServerReflection },
];

function startServer(): GrpcServer {
  return createGrpcServer({
    services: [
      { service: DeploymentService, impl: {} },
      { service: DeletionService, impl: {} },
    ],
    logger,
  });
}

function reflectionClient(service: DescService, addr: string) {
  const Ctor = grpc.makeGenericClientConstructor(grpcServiceDefinition(service), service.name);
  return new Ctor(addr, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    serverReflectionInfo(): grpc.ClientDuplexStream<RequestInit, Response>;
  };
}

/** Send the requests on one stream, half-close, and collect every response and the final status. */
async function reflect(service: DescService, addr: string, requests: RequestInit[]) {
  const client = reflectionClient(service, addr);
  try {
    const call = client.serverReflectionInfo();
    const responses: Response[] = [];
    const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
    call.on("data", (r: Response) => responses.push(r));
    call.on("error", () => {}); // read from "status"
    for (const r of requests) call.write(r);
    call.end();
    return { responses, status: await status };
  } finally {
    client.close();
  }
}

const files = (r: Response | undefined): FileDescriptorProto[] =>
  r?.messageResponse.case === "fileDescriptorResponse" ? r.messageResponse.value.fileDescriptorProto.map((b) => fromBinary(FileDescriptorProtoSchema, b)) : [];

const errorOf = (r: Response | undefined) => (r?.messageResponse.case === "errorResponse" ? r.messageResponse.value : undefined);

describe("server reflection", () => {
  let server: GrpcServer;
  let addr: string;

  beforeAll(async () => {
    server = startServer();
    addr = `127.0.0.1:${await server.listen("127.0.0.1", 0)}`;
  });

  afterAll(async () => {
    await server.shutdown(1000);
  });

  for (const { name, service } of versions) {
    describe(name, () => {
      it("list_services: ours, grpc.health.v1.Health and the reflection services", async () => {
        const { responses, status } = await reflect(service, addr, [{ host: "h", messageRequest: { case: "listServices", value: "*" } }]);
        expect(status.code).toBe(grpc.status.OK);
        expect(responses).toHaveLength(1);
        const r = responses[0];
        expect(r?.messageResponse.case).toBe("listServicesResponse");
        const names = r?.messageResponse.case === "listServicesResponse" ? r.messageResponse.value.service.map((s) => s.name) : [];
        expect(names.sort()).toEqual(
          [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "modeldeploy.v1.DeletionService",
            "modeldeploy.v1.DeploymentService",
          ].sort(),
        );
      });

      it("file_containing_symbol for a service: its file first, then every import, enough to rebuild the service; host and request echoed", async () => {
        const { responses } = await reflect(service, addr, [
          { host: "api.example:443", messageRequest: { case: "fileContainingSymbol", value: "modeldeploy.v1.DeploymentService" } },
        ]);
        const r = responses[0];
        expect(r?.validHost).toBe("api.example:443");
        expect(r?.originalRequest?.host).toBe("api.example:443");
        expect(r?.originalRequest?.messageRequest).toEqual({ case: "fileContainingSymbol", value: "modeldeploy.v1.DeploymentService" });
        const got = files(r);
        expect(got.map((f) => f.name)).toEqual([
          "modeldeploy/v1/deployment_service.proto",
          "modeldeploy/v1/resources.proto",
          "google/protobuf/timestamp.proto",
        ]);
        const registry = createFileRegistry(create(FileDescriptorSetSchema, { file: dependenciesFirst(got) }));
        const svc = registry.getService("modeldeploy.v1.DeploymentService");
        expect(svc?.methods.map((m) => m.name)).toEqual(DeploymentService.methods.map((m) => m.name));
        expect(svc?.methods.find((m) => m.name === "GetDeployment")?.idempotency).toBe(1);
        expect(registry.getMessage("modeldeploy.v1.Deployment")?.fields.map((f) => f.name)).toContain("uid");
      });

      it("file_containing_symbol for a message, a nested enum, a method, a field and an enum value", async () => {
        const symbols = [
          ["modeldeploy.v1.Deployment", "modeldeploy/v1/resources.proto"],
          ["grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"],
          ["modeldeploy.v1.DeletionService.GetDeletionTask", "modeldeploy/v1/deletion_service.proto"],
          ["modeldeploy.v1.Deployment.uid", "modeldeploy/v1/resources.proto"],
          ["modeldeploy.v1.DEPLOYMENT_STATE_RUNNING", "modeldeploy/v1/resources.proto"],
          ["grpc.health.v1.HealthCheckResponse.NOT_SERVING", "grpc/health/v1/health.proto"],
          ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
        ] as const;
        const { responses } = await reflect(
          service,
          addr,
          symbols.map(([s]) => ({ messageRequest: { case: "fileContainingSymbol", value: s } })),
        );
        expect(responses.map((r) => files(r)[0]?.name)).toEqual(symbols.map(([, f]) => f));
      });

      it("file_by_filename: the file and its imports; an unknown file or symbol is NOT_FOUND, and the stream goes on", async () => {
        const { responses, status } = await reflect(service, addr, [
          { messageRequest: { case: "fileByFilename", value: "modeldeploy/v1/deletion_service.proto" } },
          { messageRequest: { case: "fileContainingSymbol", value: "modeldeploy.v1.NoSuchThing" } },
          { messageRequest: { case: "fileByFilename", value: "nope/v1/nope.proto" } },
          { messageRequest: { case: "fileByFilename", value: "google/protobuf/timestamp.proto" } },
        ]);
        expect(status.code).toBe(grpc.status.OK);
        expect(files(responses[0]).map((f) => f.name)).toEqual([
          "modeldeploy/v1/deletion_service.proto",
          "modeldeploy/v1/resources.proto",
          "google/protobuf/timestamp.proto",
        ]);
        expect(errorOf(responses[1])).toMatchObject({ errorCode: grpc.status.NOT_FOUND });
        expect(errorOf(responses[1])?.errorMessage).toContain("modeldeploy.v1.NoSuchThing");
        expect(responses[1]?.originalRequest?.messageRequest).toEqual({ case: "fileContainingSymbol", value: "modeldeploy.v1.NoSuchThing" });
        expect(errorOf(responses[2])).toMatchObject({ errorCode: grpc.status.NOT_FOUND });
        expect(errorOf(responses[2])?.errorMessage).toContain("nope/v1/nope.proto");
        expect(files(responses[3]).map((f) => f.name)).toEqual(["google/protobuf/timestamp.proto"]);
      });

      it("extensions: none are declared, so a known type has no extension numbers and the rest is NOT_FOUND", async () => {
        const { responses } = await reflect(service, addr, [
          { messageRequest: { case: "allExtensionNumbersOfType", value: "modeldeploy.v1.Deployment" } },
          { messageRequest: { case: "allExtensionNumbersOfType", value: "modeldeploy.v1.Nope" } },
          {
            messageRequest: {
              case: "fileContainingExtension",
              value: { containingType: "modeldeploy.v1.Deployment", extensionNumber: 1000 },
            },
          },
          { messageRequest: { case: undefined } },
        ]);
        const numbers = responses[0]?.messageResponse;
        expect(numbers?.case).toBe("allExtensionNumbersResponse");
        if (numbers?.case === "allExtensionNumbersResponse") {
          expect(numbers.value.baseTypeName).toBe("modeldeploy.v1.Deployment");
          expect(numbers.value.extensionNumber).toEqual([]);
        }
        expect(errorOf(responses[1])).toMatchObject({ errorCode: grpc.status.NOT_FOUND });
        expect(errorOf(responses[2])).toMatchObject({ errorCode: grpc.status.NOT_FOUND });
        expect(errorOf(responses[3])).toMatchObject({ errorCode: grpc.status.INVALID_ARGUMENT });
      });
    });
  }
});

describe("server reflection at shutdown", () => {
  it("an open reflection stream ends with UNAVAILABLE and does not hold the graceful shutdown", async () => {
    const server = startServer();
    const addr = `127.0.0.1:${await server.listen("127.0.0.1", 0)}`;
    const client = reflectionClient(v1.ServerReflection, addr);
    try {
      const call = client.serverReflectionInfo();
      const status = new Promise<grpc.StatusObject>((resolve) => call.on("status", resolve));
      call.on("error", () => {});
      const first = new Promise<Response>((resolve) => call.once("data", resolve));
      call.write({ messageRequest: { case: "listServices", value: "" } });
      expect((await first).messageResponse.case).toBe("listServicesResponse");
      // The client keeps the stream open; a grace far past the test's timeout.
      await server.shutdown(600_000);
      expect(await status).toMatchObject({ code: grpc.status.UNAVAILABLE, details: "server is shutting down, reconnect" });
    } finally {
      client.close();
    }
  });
});
