// Per-call plumbing shared by both transports: request ids, error
// translation, the caller's deadline, and one structured log line per call.
// (The impls pass the call to the database themselves: dbForCall.) It wraps a connect-es ServiceImpl and returns
// one of the same type, so the gRPC (grpc-js) and the Connect/gRPC-Web
// (connect-node) servers run exactly the same code.
import { randomUUID } from "node:crypto";
import { setMaxListeners } from "node:events";
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, createContextKey, type HandlerContext, type ServiceImpl } from "@connectrpc/connect";
import { RequestInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import type { Logger } from "../log.js";
import { contextFrom, otelContext, otelTrace, SpanKind, SpanStatusCode, tracer, tracingEnabled, type Span } from "../telemetry/tracing.js";
import { directWriterOf } from "./direct-writer.js";
import { codeName, toConnectError } from "./errors.js";
import type { MethodMetrics, RpcMetrics } from "./rpc-metrics.js";

export const requestIdHeader = "x-request-id";

/**
 * Context key under which every call's request id is stored
 * (`ctx.values.get(requestIdKey)`); prefer `requestIdOf(ctx)`.
 * A transport may set it before the call (the Connect server does, so that
 * the HTTP layer and the handler agree); otherwise the wrapper sets it.
 */
export const requestIdKey = createContextKey<string>("", { description: "x-request-id" });

/** The request id of the current call (set by the wrapper before the impl runs). */
export function requestIdOf(ctx: HandlerContext): string {
  return ctx.values.get(requestIdKey);
}

// 1..128 visible ASCII characters, nothing else (no spaces, no commas from
// a repeated header joined by ", ").
const saneRequestId = /^[\x21-\x7e]{1,128}$/;

/** The client's request id if it is sane, else undefined. */
export function acceptRequestId(value: string | null | undefined): string | undefined {
  if (value === null || value === undefined) return undefined;
  return saneRequestId.test(value) && !value.includes(",") ? value : undefined;
}

/**
 * What a call is about, for its log line: the caller's workspace (set once
 * authenticated), the deployment and the task (set by the impl when the
 * request does not name them: a create's new name, a new task's id).
 */
export const callWorkspaceKey = createContextKey<string>("", { description: "workspace of the call" });
export const callDeploymentKey = createContextKey<string>("", { description: "deployment of the call" });
export const callTaskKey = createContextKey<string>("", { description: "task of the call" });

export function newRequestId(): string {
  return randomUUID();
}

/** The id to use for a call with these request headers. */
export function resolveRequestId(header: Headers): string {
  return acceptRequestId(header.get(requestIdHeader)) ?? newRequestId();
}

export interface WrapOptions {
  logger: Logger;
  /**
   * When aborted, open server streams end with UNAVAILABLE ("server is
   * shutting down, reconnect") so that graceful shutdown does not wait for
   * long-lived watches. Unary calls are left to finish.
   */
  shutdownSignal?: AbortSignal;
  /** Every call observed at its end (rpc-metrics.ts). */
  metrics?: RpcMetrics;
}

const wrappedTag: unique symbol = Symbol.for("modeldeploy.api.wrapped");

/** Was this impl produced by wrapServiceImpl? (The servers wrap only raw impls.) */
export function isWrappedImpl(impl: object): boolean {
  return (impl as { [wrappedTag]?: boolean })[wrappedTag] === true;
}

type AnyFn = (req: unknown, ctx: HandlerContext) => unknown;

/**
 * Wrap a service implementation: request id (ctx.values + `x-request-id`
 * response header + error metadata + google.rpc.RequestInfo detail), error
 * translation through toConnectError, one JSON log line per call (streams at
 * their end). Methods missing from `impl` answer UNIMPLEMENTED.
 *
 * Only unary and server-streaming methods are supported (the API has no
 * other kind); a service with another kind is rejected here, loudly.
 */
export function wrapServiceImpl<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>, opts: WrapOptions): ServiceImpl<S> {
  if (isWrappedImpl(impl)) return impl as ServiceImpl<S>;
  // Every open stream listens on the shutdown signal: no leak warning at 11.
  if (opts.shutdownSignal !== undefined) setMaxListeners(0, opts.shutdownSignal);
  const out: Record<string, AnyFn> = {};
  const source = impl as Record<string, AnyFn | undefined>;
  for (const method of service.methods) {
    const fn = source[method.localName];
    const bound: AnyFn =
      typeof fn === "function"
        ? (req, ctx) => fn.call(impl, req, ctx)
        : () => {
            throw new ConnectError(`${service.typeName}.${method.name} is not implemented`, Code.Unimplemented);
          };
    const metrics = opts.metrics?.method(method);
    switch (method.methodKind) {
      case "unary":
        out[method.localName] = wrapUnary(method, bound, opts, metrics);
        break;
      case "server_streaming":
        out[method.localName] = wrapServerStreaming(method, bound, opts, metrics);
        break;
      default:
        throw new Error(`${service.typeName}.${method.name}: ${method.methodKind} methods are not supported by the call wrapper`);
    }
  }
  Object.defineProperty(out, wrappedTag, { value: true, enumerable: false });
  return out as unknown as ServiceImpl<S>;
}

/** Set up the request id for a call; returns it. */
function beginCall(ctx: HandlerContext): string {
  let id = ctx.values.get(requestIdKey);
  if (id === "") {
    id = resolveRequestId(ctx.requestHeader);
    ctx.values.set(requestIdKey, id);
  }
  ctx.responseHeader.set(requestIdHeader, id);
  return id;
}

/**
 * The error sent to the client: translated, with `x-request-id` in its
 * metadata and a google.rpc.RequestInfo detail. A copy, so that an error
 * object thrown twice (a shared constant) never carries a stale id.
 */
export function finishError(err: unknown, requestId: string, ctx?: HandlerContext): ConnectError {
  // An impl that fails because the call was cancelled or timed out (its
  // fetch/query aborted through ctx.signal) reports why, not "internal error".
  const ce =
    !(err instanceof ConnectError) && ctx !== undefined && ctx.signal.aborted ? ConnectError.from(ctx.signal.reason, Code.Canceled) : toConnectError(err);
  // Errors parsed from the wire (a downstream call) keep their payload, not their headers.
  const metadata = ce.isWireError ? new Headers() : new Headers(ce.metadata);
  metadata.set(requestIdHeader, requestId);
  const copy = new ConnectError(ce.rawMessage, ce.code, metadata, undefined, ce.cause ?? err);
  copy.details = ce.details.filter((d) => ("desc" in d ? d.desc.typeName !== RequestInfoSchema.typeName : d.type !== RequestInfoSchema.typeName));
  copy.details.push({ desc: RequestInfoSchema, value: { requestId } });
  return copy;
}

/** A request message's string field, if it has one (name, taskId). */
function requestField(req: unknown, field: string): string {
  const v = typeof req === "object" && req !== null ? (req as Record<string, unknown>)[field] : undefined;
  return typeof v === "string" ? v.trim() : "";
}

function logCall(
  logger: Logger,
  method: DescMethod,
  ctx: HandlerContext,
  req: unknown,
  requestId: string,
  started: number,
  err: ConnectError | undefined,
  metrics: MethodMetrics | undefined,
  extra?: Record<string, unknown>,
): void {
  const code = err?.code ?? 0;
  metrics?.observe(code, (performance.now() - started) / 1000);
  const level = code === Code.Internal || code === Code.Unknown || code === Code.DataLoss ? "error" : code === Code.Unavailable ? "warn" : "info";
  // One line per call: at 2,000 calls/s its fields are worth not building when the level is off.
  if (logger.enabled?.(level) === false) return;
  const fields: Record<string, unknown> = {
    service: method.parent.typeName,
    method: method.name,
    protocol: ctx.protocolName,
    code: codeName(code),
    durationMs: Math.round((performance.now() - started) * 100) / 100,
    requestId,
    ...extra,
  };
  const workspace = ctx.values.get(callWorkspaceKey);
  if (workspace !== "") fields["workspace"] = workspace;
  const deployment = ctx.values.get(callDeploymentKey) || requestField(req, "name");
  if (deployment !== "") fields["deployment"] = deployment;
  const taskId = ctx.values.get(callTaskKey) || requestField(req, "taskId");
  if (taskId !== "") fields["taskId"] = taskId;
  if (err !== undefined) fields["error"] = err.rawMessage;
  if (level === "info") logger.info("rpc", fields);
  else logger[level]("rpc", { ...fields, err: err?.cause });
}

/** Log a call that failed before reaching an impl (e.g. a malformed request). */
export function logRejectedCall(
  logger: Logger,
  method: DescMethod,
  protocolName: string,
  requestId: string,
  started: number,
  err: ConnectError,
  metrics?: RpcMetrics,
): void {
  metrics?.method(method).observe(err.code, (performance.now() - started) / 1000);
  logger.info("rpc", {
    service: method.parent.typeName,
    method: method.name,
    protocol: protocolName,
    code: codeName(err.code),
    durationMs: Math.round((performance.now() - started) * 100) / 100,
    requestId,
    error: err.rawMessage,
  });
}

/**
 * `work`, or the signal's reason as soon as it aborts. connect-node awaits
 * the impl whatever the deadline; a call must end by its deadline even when
 * the impl waits on a query that the database never answers (that query
 * ends on its own, at the query timeout).
 */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      work.catch(() => {});
      reject(signal.reason);
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener("abort", onAbort, { once: true });
    work.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}

const headersGetter = {
  get: (carrier: Headers, key: string) => carrier.get(key) ?? undefined,
  keys: (carrier: Headers) => [...carrier.keys()],
};

/** The call's server span, child of the caller's trace context if it sent one (traceparent). */
function startCallSpan(method: DescMethod, ctx: HandlerContext, requestId: string): { span: Span; run: <T>(f: () => T) => T } {
  const parent = contextFrom(ctx.requestHeader, headersGetter);
  const span = tracer().startSpan(
    `${method.parent.typeName}/${method.name}`,
    {
      kind: SpanKind.SERVER,
      attributes: { "rpc.system": "grpc", "rpc.service": method.parent.typeName, "rpc.method": method.name, "modeldeploy.request_id": requestId },
    },
    parent,
  );
  const active = otelTrace.setSpan(parent, span);
  return { span, run: (f) => otelContext.with(active, f) };
}

function endCallSpan(span: Span, ctx: HandlerContext, err: ConnectError | undefined): void {
  const workspace = ctx.values.get(callWorkspaceKey);
  if (workspace !== "") span.setAttribute("modeldeploy.workspace", workspace);
  const deployment = ctx.values.get(callDeploymentKey);
  if (deployment !== "") span.setAttribute("modeldeploy.deployment", deployment);
  span.setAttribute("rpc.grpc.status_code", err?.code ?? 0);
  if (err !== undefined) span.setStatus({ code: SpanStatusCode.ERROR, message: err.rawMessage });
  span.end();
}

function wrapUnary(method: DescMethod, fn: AnyFn, opts: WrapOptions, metrics: MethodMetrics | undefined): AnyFn {
  const { logger } = opts;
  return async (req, ctx) => {
    const started = performance.now();
    const requestId = beginCall(ctx);
    // Tracing off: no span, no context switch.
    const traced = tracingEnabled() ? startCallSpan(method, ctx, requestId) : undefined;
    try {
      const work = Promise.resolve(traced === undefined ? fn(req, ctx) : traced.run(() => fn(req, ctx)));
      // Only a call with a deadline is raced (a cancelled one has nobody to answer).
      const res = await (ctx.timeoutMs() === undefined ? work : untilAborted(work, ctx.signal));
      logCall(logger, method, ctx, req, requestId, started, undefined, metrics);
      if (traced !== undefined) endCallSpan(traced.span, ctx, undefined);
      return res;
    } catch (e) {
      const err = finishError(e, requestId, ctx);
      // Connect unary appends error metadata to the response headers: keep the
      // id in one place so it is not sent twice ("id, id").
      ctx.responseHeader.delete(requestIdHeader);
      logCall(logger, method, ctx, req, requestId, started, err, metrics);
      if (traced !== undefined) endCallSpan(traced.span, ctx, err);
      throw err;
    }
  };
}

const shuttingDown = () => new ConnectError("server is shutting down, reconnect", Code.Unavailable);

/**
 * Reads an impl's iterator, but gives up as soon as the call is cancelled or
 * the server shuts down (an impl blocked on a live feed may not notice).
 * Listeners are registered once per stream, not per message.
 */
class AbortableReader<T> {
  private rejectPending: ((e: unknown) => void) | undefined;
  private abortedWith: ConnectError | undefined;
  private readonly onCancel = () => this.fail(ConnectError.from(this.ctx.signal.reason, Code.Canceled));
  private readonly onShutdown = () => this.fail(shuttingDown());

  constructor(
    private readonly it: AsyncIterator<T>,
    private readonly ctx: HandlerContext,
    private readonly shutdown: AbortSignal | undefined,
  ) {
    if (ctx.signal.aborted) this.onCancel();
    else if (shutdown?.aborted === true) this.onShutdown();
    else {
      ctx.signal.addEventListener("abort", this.onCancel);
      shutdown?.addEventListener("abort", this.onShutdown);
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.abortedWith !== undefined) return Promise.reject(this.abortedWith);
    return new Promise<IteratorResult<T>>((resolve, reject) => {
      this.rejectPending = reject;
      this.it.next().then(resolve, reject);
    });
  }

  private fail(err: ConnectError): void {
    this.abortedWith ??= err;
    this.rejectPending?.(err);
    this.dispose();
  }

  dispose(): void {
    this.rejectPending = undefined;
    this.ctx.signal.removeEventListener("abort", this.onCancel);
    this.shutdown?.removeEventListener("abort", this.onShutdown);
  }
}

function wrapServerStreaming(method: DescMethod, fn: AnyFn, opts: WrapOptions, metrics: MethodMetrics | undefined): AnyFn {
  const { logger, shutdownSignal } = opts;
  return async function* wrappedStream(req: unknown, ctx: HandlerContext) {
    const started = performance.now();
    const requestId = beginCall(ctx);
    metrics?.streamOpened();
    let messages = 0;
    let finished = false;
    let err: ConnectError | undefined;
    let it: AsyncIterator<unknown> | undefined;
    let reader: AbortableReader<unknown> | undefined;
    try {
      const iterable = fn(req, ctx) as AsyncIterable<unknown>;
      it = iterable[Symbol.asyncIterator]();
      reader = new AbortableReader(it, ctx, shutdownSignal);
      for (;;) {
        const r = await reader.next();
        if (r.done === true) {
          finished = true;
          break;
        }
        messages++;
        yield r.value;
      }
    } catch (e) {
      finished = true;
      err = finishError(e, requestId, ctx);
      throw err;
    } finally {
      reader?.dispose();
      if (!finished) {
        // The consumer stopped reading (client went away): that is a cancel.
        err = new ConnectError("canceled", Code.Canceled);
      }
      if (it !== undefined && (!finished || err !== undefined) && it.return !== undefined) {
        // Do not await: an impl blocked on a live feed may only notice ctx.signal.
        it.return().catch(() => {});
      }
      metrics?.streamClosed();
      logCall(logger, method, ctx, req, requestId, started, err, metrics, { messages: messages + (directWriterOf(ctx)?.written ?? 0) });
    }
  };
}

/** A service descriptor and its (raw, unwrapped) connect-es implementation. */
export interface ServiceBinding {
  readonly service: DescService;
  readonly impl: object;
}

/** Type-checked construction of a ServiceBinding. */
export function bindService<S extends DescService>(service: S, impl: Partial<ServiceImpl<S>>): ServiceBinding {
  return { service, impl };
}
