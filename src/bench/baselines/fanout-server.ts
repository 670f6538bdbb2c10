// Baseline: a bare @grpc/grpc-js server holding WatchDeployment streams. Each
// stream gets a snapshot of the deployment; on the line "fire" on stdin one
// event is written to every open stream (grpc-js serializes it per stream).
import { fromBinary, toBinary, create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { WatchDeploymentRequestSchema, type WatchDeploymentRequest } from "../../gen/modeldeploy/v1/deployment_service_pb.js";
import { DeploymentEventSchema, EventType, type DeploymentEvent } from "../../gen/modeldeploy/v1/resources_pb.js";
import { createDeploymentReader } from "./deployment-query.js";
import { emit, onLine, scriptArgs } from "./script.js";

const args = scriptArgs<{ url: string; name: string }>();
const reader = createDeploymentReader(args.url, 2);
const deployment = await reader.get(args.name);
if (!deployment) throw new Error(`no deployment ${args.name}`);
const streams = new Set<grpc.ServerWritableStream<WatchDeploymentRequest, DeploymentEvent>>();

const server = new grpc.Server();
server.addService(
  {
    watchDeployment: {
      path: "/modeldeploy.v1.DeploymentService/WatchDeployment",
      requestStream: false,
      responseStream: true,
      requestSerialize: (m: WatchDeploymentRequest) => Buffer.from(toBinary(WatchDeploymentRequestSchema, m)),
      requestDeserialize: (b: Buffer) => fromBinary(WatchDeploymentRequestSchema, b),
      responseSerialize: (m: DeploymentEvent) => Buffer.from(toBinary(DeploymentEventSchema, m)),
      responseDeserialize: (b: Buffer) => fromBinary(DeploymentEventSchema, b),
    },
  },
  {
    watchDeployment: (call: grpc.ServerWritableStream<WatchDeploymentRequest, DeploymentEvent>) => {
      streams.add(call);
      call.on("cancelled", () => streams.delete(call));
      call.write(create(DeploymentEventSchema, { sequence: deployment.sequence, time: timestampNow(), type: EventType.SNAPSHOT, deployment }));
    },
  },
);
let sequence = deployment.sequence;
onLine((line) => {
  if (line !== "fire") return;
  sequence++;
  const event = create(DeploymentEventSchema, { sequence, time: timestampNow(), type: EventType.STATE_CHANGED, deployment: { ...deployment, sequence } });
  for (const s of streams) s.write(event);
});
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err) throw err;
  void emit({ ready: true, port });
});
