// Native gRPC on @grpc/grpc-js, serving the connect-es service
// implementations (ServiceImpl) unchanged: grpc-js does HTTP/2 and framing,
// we build a connect HandlerContext per call, run the (wrapped) impl and map
// its result or ConnectError to gRPC status, metadata and
// grpc-status-details-bin. Plus grpc.health.v1 and server reflection.
// Connections come through our own listener (a connection cap, connection-
// cap.ts) and are injected into grpc-js; idle, keepalive, stream and header
// limits are grpc-js and HTTP/2 settings (wire-limits.ts).
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { AnySchema, anyPack } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, createContextValues, type HandlerContext } from "@connectrpc/connect";
import * as grpc from "@grpc/grpc-js";
import { StatusSchema } from "../gen/google/rpc/status_pb.js";
import { Health } from "../gen/grpc/health/v1/health_pb.js";
import type { Logger } from "../log.js";
import {
  acceptRequestId,
  finishError,
  newRequestId,
  logRejectedCall,
  requestIdHeader,
  requestIdOf,
  resolveRequestId,
  wrapServiceImpl,
  type ServiceBinding,
} from "./call-wrapper.js";
import { directWriterKey } from "./direct-writer.js";
import { GrpcDirectWriter } from "./grpc-direct-writer.js";
import { createHealthService, ServingStatus, type HealthService } from "./grpc-health.js";
import { createGrpcListener, grpcLimitOptions, type GrpcTlsOptions } from "./grpc-listener.js";
import { serializeMessage as serialize } from "./grpc-service-definition.js";
import { addReflection } from "./reflection.js";
import { createSharedSerializer, type SharedSerializer } from "./shared-serializer.js";
import { headersTooLarge, malformedMessage, messageTooLarge } from "./request-rejections.js";
import { wireLimits, type WireLimits } from "./wire-limits.js";
import type { RpcMetrics } from "./rpc-metrics.js";

export type { GrpcTlsOptions } from "./grpc-listener.js";
export { grpcServiceDefinition } from "./grpc-service-definition.js";

export const defaultMaxMessageBytes = 4 * 1024 * 1024;

/**
 * grpc-js answers a message above its own limit before any of our code runs,
 * so without an x-request-id. Our limit is therefore checked in parseRequest,
 * and grpc-js gets this multiple of it: it still bounds what one call may
 * buffer (it refuses from the length prefix, before reading the message).
 */
export const grpcHardLimitFactor = 4;

export interface GrpcServerOptions {
  /** Raw (unwrapped) implementations; the server wraps them with wrapServiceImpl. */
  services: readonly ServiceBinding[];
  logger: Logger;
  /**
   * Larger request messages get RESOURCE_EXHAUSTED (with an x-request-id).
   * Default 4 MiB. grpc-js itself only refuses messages above
   * grpcHardLimitFactor times this, unbuffered.
   */
  maxReceiveMessageBytes?: number;
  /** TLS when given, otherwise cleartext HTTP/2 (h2c). */
  tls?: GrpcTlsOptions;
  /** Connections, streams, header bytes, idle and keepalive (defaultWireLimits). */
  limits?: Partial<WireLimits>;
  /** Extra grpc-js server options (keepalive, max concurrent streams, …). */
  grpcOptions?: grpc.ServerOptions;
  /** Serializes server-stream messages, once per message object. Default: one of its own. */
  streamSerializer?: SharedSerializer;
  /** Every call observed (both transports share one). */
  metrics?: RpcMetrics;
}

export interface GrpcServer {
  readonly server: grpc.Server;
  /** grpc.health.v1 ("" and every service name). */
  readonly health: HealthService;
  /** Bind and start; resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number>;
  /** Set "" and every served service SERVING or NOT_SERVING. */
  setServing(serving: boolean): void;
  /**
   * NOT_SERVING, end open server streams with UNAVAILABLE, stop accepting,
   * let in-flight calls finish for up to graceMs, then cut the rest.
   */
  shutdown(graceMs: number): Promise<void>;
}

const identity = (b: Buffer): Buffer => b;
const noop = () => {};

/** Server side: raw bytes both ways; parsing and serializing happen in the handler, so their errors carry a request id. */
function rawServiceDefinition(service: DescService): grpc.ServiceDefinition {
  const def: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
  for (const method of service.methods) {
    def[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
      originalName: method.name,
    };
  }
  return def;
}

// Headers that belong to the HTTP/2 or gRPC protocol, never sent as user metadata.
const protocolKeys = new Set([
  "content-type",
  "content-length",
  "te",
  "user-agent",
  "host",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "accept-encoding",
]);

/**
 * grpc Metadata → fetch Headers (binary values base64, as Connect does), and
 * their size as HTTP/2 counts it (name + value + 32 per field).
 */
function convertMetadata(md: grpc.Metadata): { headers: Headers; bytes: number } {
  const h = new Headers();
  let bytes = 0;
  // grpc-js already removed grpc-timeout, grpc-encoding, te, content-type, ….
  for (const [key, values] of Object.entries(md.toJSON())) {
    for (const v of values) {
      const value = typeof v === "string" ? v : v.toString("base64");
      bytes += key.length + value.length + 32;
      try {
        h.append(key, value);
      } catch {
        // a value fetch Headers cannot hold: drop it
      }
    }
  }
  return { headers: h, bytes };
}

/** grpc Metadata → fetch Headers (binary values base64, as Connect does). */
export function metadataToHeaders(md: grpc.Metadata): Headers {
  return convertMetadata(md).headers;
}

/** fetch Headers → grpc Metadata (one value per key; "-bin" keys base64-decoded). */
export function headersToMetadata(h: Headers, into: grpc.Metadata = new grpc.Metadata()): grpc.Metadata {
  h.forEach((value, key) => {
    if (protocolKeys.has(key)) return;
    try {
      if (key.endsWith("-bin")) into.set(key, Buffer.from(value, "base64"));
      else into.set(key, value);
    } catch {
      // grpc-js refuses keys/values that are not legal metadata: drop them
    }
  });
  return into;
}

/** The grpc-js status for a ConnectError, with google.rpc.Status in grpc-status-details-bin. */
function toServiceError(e: unknown, ctx: HandlerContext, headerSent: boolean): Partial<grpc.StatusObject> {
  const err = e instanceof ConnectError ? e : finishError(e, requestIdOf(ctx) || resolveRequestId(ctx.requestHeader), ctx);
  const all = new Headers();
  const copy = (from: Headers) => from.forEach((v, k) => all.set(k, v));
  // Before the first message a gRPC error is "trailers-only": the response
  // headers travel with the status.
  if (!headerSent) copy(ctx.responseHeader);
  copy(ctx.responseTrailer);
  if (!err.isWireError) copy(err.metadata);
  const metadata = headersToMetadata(all);
  const status = create(StatusSchema, {
    code: err.code,
    message: err.rawMessage,
    details: err.details.map((d) =>
      "desc" in d ? anyPack(d.desc, create(d.desc, d.value)) : create(AnySchema, { typeUrl: `type.googleapis.com/${d.type}`, value: d.value }),
    ),
  });
  const bytes = toBinary(StatusSchema, status);
  metadata.set("grpc-status-details-bin", Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  return { code: err.code as number as grpc.status, details: err.rawMessage, metadata };
}

type ImplFn = (req: unknown, ctx: HandlerContext) => unknown;

/**
 * The HandlerContext of a grpc-js call. Like connect's createHandlerContext,
 * but its AbortSignal is created only when an impl reads `ctx.signal`, and
 * it needs no timer of its own (grpc-js enforces the deadline and reports it
 * as "cancelled"): AbortControllers and Errors per call were the largest
 * overhead of this path in a profile.
 */
class GrpcCallContext implements HandlerContext {
  readonly protocolName = "grpc";
  readonly requestMethod = "POST";
  readonly responseHeader = new Headers();
  readonly responseTrailer = new Headers();
  readonly values = createContextValues();
  readonly service: DescService;
  private controller: AbortController | undefined;
  private aborted = false;
  private reason: unknown;
  private listeners: Set<(reason: unknown) => void> | undefined;

  constructor(
    readonly method: DescMethod,
    readonly requestHeader: Headers,
    private readonly deadlineMs: number,
    private readonly urlParts: { scheme: string; host: string; path: string },
  ) {
    this.service = method.parent;
  }

  get url(): string {
    return `${this.urlParts.scheme}://${this.urlParts.host}${this.urlParts.path}`;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.aborted) this.controller.abort(this.reason);
    }
    return this.controller.signal;
  }

  readonly timeoutMs = (): number | undefined => (Number.isFinite(this.deadlineMs) ? this.deadlineMs - Date.now() : undefined);

  /** CallScope.onAbort: a database wait (pool, write batch) listens here without making the signal. */
  onAbort(listener: (reason: unknown) => void): () => void {
    if (this.aborted) {
      listener(this.reason);
      return noop;
    }
    (this.listeners ??= new Set()).add(listener);
    return () => this.listeners?.delete(listener);
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.controller?.abort(reason);
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners !== undefined) for (const listener of listeners) listener(reason);
  }
}

interface CallSetup {
  ctx: GrpcCallContext;
  started: number;
  /** Request metadata size, as HTTP/2 counts it. */
  headerBytes: number;
  /** Abort ctx.signal (connect semantics: also when the call completes). */
  finish(): void;
}

// The reason ctx.signal carries once a call has completed normally. Shared:
// creating an Error (a stack trace) per call is measurable on this hot path.
const callCompleted = new ConnectError("the call has completed", Code.Canceled);
// Likewise for calls that end early: a flood of reset streams makes thousands.
const callCancelled = new ConnectError("the call was cancelled", Code.Canceled);
const callTimedOut = new ConnectError("the operation timed out", Code.DeadlineExceeded);

// grpc-js arms its deadline timer from the event loop's cached clock, which
// lags Date.now() when the loop is busy, so it can fire a little before the
// deadline by Date.now(): a "cancelled" this close to the deadline is the deadline.
const deadlineSlackMs = 100;

function setupCall(
  call: grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer>,
  method: DescMethod,
  scheme: string,
  abandoned: (peer: string) => void,
): CallSetup {
  const started = performance.now();
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  const { headers, bytes: headerBytes } = convertMetadata(call.metadata);
  const ctx = new GrpcCallContext(method, headers, deadlineMs, {
    scheme,
    host: call.getHost(),
    path: call.getPath(),
  });
  let finished = false;
  // Read now: once the stream is gone grpc-js no longer knows the peer.
  const peer = call.getPeer();
  call.once("cancelled", () => {
    // grpc-js also reports "cancelled" after a call ended normally.
    if (finished) return;
    // grpc-js ends a call whose deadline passed and then reports "cancelled".
    if (Date.now() >= deadlineMs - deadlineSlackMs) {
      ctx.abort(callTimedOut);
      return;
    }
    ctx.abort(callCancelled);
    abandoned(peer);
  });
  const finish = () => {
    finished = true;
    ctx.abort(callCompleted);
  };
  return { ctx, started, headerBytes, finish };
}

/** What parseRequest refuses, and whom to tell about a call its client abandoned. */
interface RequestLimits {
  maxMessageBytes: number;
  maxHeaderBytes: number;
  abandoned(peer: string): void;
  /** Refused calls are observed too. */
  metrics: RpcMetrics | undefined;
}

/**
 * Parse the request; oversized metadata or message is RESOURCE_EXHAUSTED, a
 * malformed message INVALID_ARGUMENT: a ServiceError, logged, with a request id.
 */
function parseRequest(
  method: DescMethod,
  bytes: Buffer,
  setup: CallSetup,
  logger: Logger,
  limits: RequestLimits,
): { ok: true; value: unknown } | { ok: false; error: Partial<grpc.StatusObject> } {
  const reject = (e: ConnectError) => {
    const requestId = resolveRequestId(setup.ctx.requestHeader);
    setup.ctx.responseHeader.set(requestIdHeader, requestId);
    const err = finishError(e, requestId);
    logRejectedCall(logger, method, "grpc", requestId, setup.started, err, limits.metrics);
    return { ok: false as const, error: toServiceError(err, setup.ctx, false) };
  };
  if (setup.headerBytes > limits.maxHeaderBytes) return reject(headersTooLarge(setup.headerBytes, limits.maxHeaderBytes));
  if (bytes.byteLength > limits.maxMessageBytes) return reject(messageTooLarge(bytes.byteLength, limits.maxMessageBytes));
  try {
    return { ok: true, value: fromBinary(method.input, bytes) };
  } catch (e) {
    return reject(malformedMessage(method, e));
  }
}

function serializeResponse(method: DescMethod, value: unknown, ctx: HandlerContext, logger: Logger, serializer?: SharedSerializer): Buffer {
  try {
    return serializer !== undefined ? serializer.serialize(method.output, value) : serialize(method.output, value);
  } catch (e) {
    logger.error("cannot serialize response", {
      service: method.parent.typeName,
      method: method.name,
      requestId: requestIdOf(ctx),
      err: e,
    });
    throw new ConnectError("internal error", Code.Internal, undefined, undefined, e);
  }
}

function unaryHandler(method: DescMethod, fn: ImplFn, logger: Logger, scheme: string, limits: RequestLimits): grpc.handleUnaryCall<Buffer, Buffer> {
  return (call, callback) => {
    const setup = setupCall(call, method, scheme, limits.abandoned);
    const { ctx, finish } = setup;
    const parsed = parseRequest(method, call.request, setup, logger, limits);
    if (!parsed.ok) {
      finish();
      callback(parsed.error);
      return;
    }
    const run = async () => {
      try {
        const out = await fn(parsed.value, ctx);
        const bytes = serializeResponse(method, out, ctx, logger);
        if (call.cancelled) return;
        call.sendMetadata(headersToMetadata(ctx.responseHeader));
        callback(null, bytes, headersToMetadata(ctx.responseTrailer));
      } catch (e) {
        if (call.cancelled) return;
        callback(toServiceError(e, ctx, false));
      } finally {
        finish();
      }
    };
    void run();
  };
}

function drainedOrCancelled(call: grpc.ServerWritableStream<Buffer, Buffer>): Promise<void> {
  if (call.cancelled || call.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("cancelled", done);
      call.off("close", done);
      resolve();
    };
    call.on("drain", done);
    call.on("cancelled", done);
    call.on("close", done);
  });
}

function serverStreamingHandler(
  method: DescMethod,
  fn: ImplFn,
  logger: Logger,
  scheme: string,
  limits: RequestLimits,
  serializer: SharedSerializer,
): grpc.handleServerStreamingCall<Buffer, Buffer> {
  return (call) => {
    const setup = setupCall(call, method, scheme, limits.abandoned);
    const { ctx, finish } = setup;
    const parsed = parseRequest(method, call.request, setup, logger, limits);
    if (!parsed.ok) {
      finish();
      call.emit("error", parsed.error);
      return;
    }
    let headerSent = false;
    const sendHeader = () => {
      if (headerSent) return;
      headerSent = true;
      call.sendMetadata(headersToMetadata(ctx.responseHeader));
    };
    // Impls that can push their messages (WatchStream) write through this, in
    // their own loop; the rest come through the loop below.
    ctx.values.set(directWriterKey, new GrpcDirectWriter(call, (m) => serializeResponse(method, m, ctx, logger, serializer), sendHeader));
    const run = async () => {
      try {
        const iterable = fn(parsed.value, ctx) as AsyncIterable<unknown>;
        for await (const msg of iterable) {
          if (call.cancelled) break; // returns the iterator: the impl stops
          const bytes = serializeResponse(method, msg, ctx, logger, serializer);
          sendHeader();
          if (!call.write(bytes)) await drainedOrCancelled(call);
          if (call.cancelled) break;
        }
        if (call.cancelled) return;
        sendHeader();
        call.end(headersToMetadata(ctx.responseTrailer));
      } catch (e) {
        if (call.cancelled) return;
        call.emit("error", toServiceError(e, ctx, headerSent));
      } finally {
        finish();
      }
    };
    void run();
  };
}

/**
 * Third-party services (health, reflection) registered through this get an
 * `x-request-id` response header too: it is sent as initial metadata before
 * their handler runs. (They are not logged per call: health checks are noise.)
 */
function withRequestIdHeader(server: grpc.Server): Pick<grpc.Server, "addService"> {
  return {
    addService(definition, implementation) {
      const wrapped: grpc.UntypedServiceImplementation = {};
      for (const [name, handler] of Object.entries(implementation)) {
        wrapped[name] = ((call: { metadata: grpc.Metadata; sendMetadata(md: grpc.Metadata): void }, ...rest: unknown[]) => {
          const md = new grpc.Metadata();
          const sent = call.metadata.get(requestIdHeader)[0];
          md.set(requestIdHeader, acceptRequestId(typeof sent === "string" ? sent : undefined) ?? newRequestId());
          call.sendMetadata(md);
          (handler as (...args: unknown[]) => void)(call, ...rest);
        }) as grpc.UntypedHandleCall;
      }
      server.addService(definition, wrapped);
    },
  };
}

export function createGrpcServer(opts: GrpcServerOptions): GrpcServer {
  const { logger } = opts;
  const maxReceive = opts.maxReceiveMessageBytes ?? defaultMaxMessageBytes;
  const limits = wireLimits(opts.limits);
  const server = new grpc.Server({
    "grpc.max_receive_message_length": Math.min(maxReceive * grpcHardLimitFactor, 0x7fffffff),
    ...grpcLimitOptions(limits),
    ...opts.grpcOptions,
  });
  const listener = createGrpcListener(server, { tls: opts.tls, limits, logger });
  const requestLimits: RequestLimits = {
    maxMessageBytes: maxReceive,
    maxHeaderBytes: limits.maxHeaderBytes,
    abandoned: (peer) => listener.callAbandoned(peer),
    metrics: opts.metrics,
  };
  const scheme = opts.tls !== undefined ? "https" : "http";
  const shutdown = new AbortController();
  const streamSerializer = opts.streamSerializer ?? createSharedSerializer();

  for (const { service, impl } of opts.services) {
    const wrapped = wrapServiceImpl(service, impl, {
      logger,
      shutdownSignal: shutdown.signal,
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
    }) as unknown as Record<string, ImplFn>;
    const handlers: grpc.UntypedServiceImplementation = {};
    for (const method of service.methods) {
      const fn = wrapped[method.localName];
      if (fn === undefined) continue;
      switch (method.methodKind) {
        case "unary":
          handlers[method.localName] = unaryHandler(method, fn, logger, scheme, requestLimits);
          break;
        case "server_streaming":
          handlers[method.localName] = serverStreamingHandler(method, fn, logger, scheme, requestLimits, streamSerializer);
          break;
        default:
          // wrapServiceImpl already refused these; keep the switch exhaustive.
          throw new Error(`${service.typeName}.${method.name}: ${method.methodKind} is not supported`);
      }
    }
    server.addService(rawServiceDefinition(service), handlers);
  }

  const serviceNames = ["", ...opts.services.map((s) => s.service.typeName)];
  const health = createHealthService(serviceNames.map((n) => [n, ServingStatus.SERVING] as const));
  const withIds = withRequestIdHeader(server);
  health.addToServer(withIds);
  // Describe grpc.health.v1 too, so reflection clients can call it.
  addReflection(withIds, [...opts.services.map((s) => s.service), Health], { shutdownSignal: shutdown.signal });

  const setServing = (serving: boolean) => {
    const status = serving ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    for (const name of serviceNames) health.setStatus(name, status);
  };

  let closing: Promise<void> | undefined;

  return {
    server,
    health,
    setServing,
    listen(host, port) {
      return listener.listen(host, port);
    },
    shutdown(graceMs) {
      closing ??= new Promise<void>((resolve) => {
        setServing(false);
        // Health watchers have seen NOT_SERVING; end their calls (and
        // reflection's) so that the graceful shutdown does not wait for them.
        health.close();
        shutdown.abort();
        listener.close();
        const timer = setTimeout(() => {
          logger.warn("grpc server: grace period over, cancelling remaining calls", { graceMs });
          server.forceShutdown();
          listener.destroyAll();
          resolve();
        }, graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      return closing;
    },
  };
}
