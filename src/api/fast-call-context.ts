// The HandlerContext the unary fast path (connect-unary-fast.ts) gives an
// implementation: what connect-node's createHandlerContext builds, with its
// signal, trailers and url made on first use, an onAbort for database waits
// (CallScope), and the list of calls in progress for the end of a shutdown.
import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { Code, ConnectError, type ContextValues, type HandlerContext } from "@connectrpc/connect";
import type { NodeRequest } from "./node-http.js";

const noop = () => {};
const noTimeout = (): number | undefined => undefined;
const deadlineExceeded = () => new ConnectError("the operation timed out", Code.DeadlineExceeded);

/**
 * The HandlerContext of one call, as connect-node's createHandlerContext
 * builds it, but with its signal (and trailer, url) made on first use: most
 * calls never look at them (CallScope: "read it only when about to wait").
 */
export class FastCallContext implements HandlerContext {
  readonly service: DescService;
  readonly requestMethod = "POST";
  readonly protocolName = "connect";
  readonly responseHeader: Headers;
  readonly timeoutMs: () => number | undefined;
  private controller: AbortController | undefined;
  private abortedWith: { reason: unknown } | undefined;
  private trailer: Headers | undefined;
  private listeners: Set<(reason: unknown) => void> | undefined;
  /** Neighbours in ActiveCalls. */
  prev: FastCallContext | undefined;
  next: FastCallContext | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly method: DescMethod,
    readonly requestHeader: Headers,
    readonly values: ContextValues,
    contentType: string,
    timeoutMs: number | undefined,
    private readonly req: NodeRequest,
  ) {
    this.service = method.parent;
    // set(), not an init record: no webidl record conversion per call.
    this.responseHeader = new Headers();
    this.responseHeader.set("content-type", contentType);
    if (timeoutMs === undefined) {
      this.timeoutMs = noTimeout;
    } else {
      const deadline = Date.now() + timeoutMs;
      this.timeoutMs = () => deadline - Date.now();
      if (timeoutMs <= 0) this.abort(deadlineExceeded());
      else this.timer = setTimeout(() => this.abort(deadlineExceeded()), timeoutMs);
    }
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      this.controller = new AbortController();
      if (this.abortedWith !== undefined) this.controller.abort(this.abortedWith.reason);
    }
    return this.controller.signal;
  }

  get responseTrailer(): Headers {
    return (this.trailer ??= new Headers());
  }

  /** Trailers set so far, without making them. */
  get trailerIfAny(): Headers | undefined {
    return this.trailer;
  }

  get url(): string {
    const encrypted = "encrypted" in this.req.socket && this.req.socket.encrypted === true;
    return new URL(this.req.url ?? "", `${encrypted ? "https" : "http"}://${this.req.headers.host ?? ""}`).toString();
  }

  /** CallScope.onAbort: a database wait listens here without making the signal. */
  onAbort(listener: (reason: unknown) => void): () => void {
    if (this.abortedWith !== undefined) {
      listener(this.abortedWith.reason);
      return noop;
    }
    (this.listeners ??= new Set()).add(listener);
    return () => this.listeners?.delete(listener);
  }

  /** The first reason wins, as with an AbortController. */
  abort(reason: unknown): void {
    if (this.abortedWith !== undefined) return;
    this.abortedWith = { reason };
    clearTimeout(this.timer);
    this.controller?.abort(reason);
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners !== undefined) for (const listener of listeners) listener(reason);
  }
}

/** Calls in progress: a list through the contexts themselves (no hashing per call, as a Set would). */
export class ActiveCalls {
  private head: FastCallContext | undefined;

  add(ctx: FastCallContext): void {
    ctx.next = this.head;
    if (this.head !== undefined) this.head.prev = ctx;
    this.head = ctx;
  }

  delete(ctx: FastCallContext): void {
    if (ctx.prev !== undefined) ctx.prev.next = ctx.next;
    else if (this.head === ctx) this.head = ctx.next;
    else return;
    if (ctx.next !== undefined) ctx.next.prev = ctx.prev;
    ctx.prev = ctx.next = undefined;
  }

  abortAll(reason: unknown): void {
    for (let ctx = this.head; ctx !== undefined; ctx = ctx.next) ctx.abort(reason);
  }
}
