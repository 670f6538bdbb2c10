// Idle and keepalive limits for the HTTP port's HTTP/2 sessions, as grpc-js
// applies them on the gRPC port (grpc.max_connection_idle_ms,
// grpc.keepalive_time_ms, grpc.keepalive_timeout_ms): a session with no
// stream open for idleMs is closed (GOAWAY, then it ends); a session is
// pinged every keepaliveTimeMs and destroyed when the peer does not answer
// within keepaliveTimeoutMs (a vanished client holding open watches); a
// session that abandons more streams than its reset budget is closed
// (GOAWAY ENHANCE_YOUR_CALM, reset-budget.ts).
import * as http2 from "node:http2";
import { ResetBudget, tooManyResets } from "./reset-budget.js";
import type { WireLimits } from "./wire-limits.js";

export function applySessionLimits(
  session: http2.ServerHttp2Session,
  limits: Pick<WireLimits, "idleConnectionMs" | "keepaliveTimeMs" | "keepaliveTimeoutMs" | "maxStreamResets">,
): void {
  const resets = new ResetBudget(limits.maxStreamResets);
  let open = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  let pingTimer: NodeJS.Timeout | undefined;
  let pingDeadline: NodeJS.Timeout | undefined;

  const armIdle = () => {
    idleTimer = setTimeout(() => {
      if (open === 0 && !session.closed) session.close();
    }, limits.idleConnectionMs);
    idleTimer.unref();
  };
  session.on("stream", (stream: http2.ServerHttp2Stream) => {
    open++;
    clearTimeout(idleTimer);
    // Reset before the response was complete: the client abandoned it.
    stream.once("aborted", () => {
      if (resets.take() || session.destroyed) return;
      try {
        session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM, 0, Buffer.from(tooManyResets(limits.maxStreamResets)));
      } catch {
        // already going away
      }
      session.destroy();
    });
    stream.once("close", () => {
      open--;
      if (open === 0 && !session.closed && !session.destroyed) armIdle();
    });
  });
  armIdle();

  const schedulePing = () => {
    pingTimer = setTimeout(ping, limits.keepaliveTimeMs);
    pingTimer.unref();
  };
  const ping = () => {
    if (session.closed || session.destroyed) return;
    pingDeadline = setTimeout(() => session.destroy(), limits.keepaliveTimeoutMs);
    pingDeadline.unref();
    let sent = false;
    try {
      sent = session.ping((err) => {
        clearTimeout(pingDeadline);
        if (err === null) schedulePing();
        else session.destroy();
      });
    } catch {
      sent = false;
    }
    if (!sent) {
      clearTimeout(pingDeadline);
      session.destroy();
    }
  };
  schedulePing();

  session.once("close", () => {
    clearTimeout(idleTimer);
    clearTimeout(pingTimer);
    clearTimeout(pingDeadline);
  });
}
