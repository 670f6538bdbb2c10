// Baseline: a bare @grpc/grpc-js server with only GetDeployment, answering
// from the same query with pg (no auth, no interceptors, no limits).
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { GetDeploymentRequestSchema, type GetDeploymentRequest } from "../../gen/modeldeploy/v1/deployment_service_pb.js";
import { DeploymentSchema, type Deployment } from "../../gen/modeldeploy/v1/resources_pb.js";
import { createDeploymentReader } from "./deployment-query.js";
import { emit, scriptArgs } from "./script.js";

const args = scriptArgs<{ url: string; poolMax: number }>();
const reader = createDeploymentReader(args.url, args.poolMax);
const server = new grpc.Server();
server.addService(
  {
    getDeployment: {
      path: "/modeldeploy.v1.DeploymentService/GetDeployment",
      requestStream: false,
      responseStream: false,
      requestSerialize: (m: GetDeploymentRequest) => Buffer.from(toBinary(GetDeploymentRequestSchema, m)),
      requestDeserialize: (b: Buffer) => fromBinary(GetDeploymentRequestSchema, b),
      responseSerialize: (m: Deployment) => Buffer.from(toBinary(DeploymentSchema, m)),
      responseDeserialize: (b: Buffer) => fromBinary(DeploymentSchema, b),
    },
  },
  {
    getDeployment: (call: grpc.ServerUnaryCall<GetDeploymentRequest, Deployment>, done: grpc.sendUnaryData<Deployment>) => {
      reader.get(call.request.name).then(
        (d) => (d ? done(null, d) : done({ code: grpc.status.NOT_FOUND, details: "not found" })),
        (err: Error) => done({ code: grpc.status.UNAVAILABLE, details: err.message }),
      );
    },
  },
);
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  void emit({ ready: true, port });
});
