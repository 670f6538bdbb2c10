// Queue failures are told apart by class and code, never by message text, and
// the ones that mean "cannot reach the queue now" become DependencyUnavailableError.
import { JetStreamApiError } from "@nats-io/jetstream";
import { jserrors, JetStreamStatusError } from "@nats-io/jetstream/internal";
import { NoRespondersError, RequestError, TimeoutError } from "@nats-io/transport-node";
import { describe, expect, it } from "vitest";
import { DependencyUnavailableError } from "../../src/domain/errors.js";
import { classifyQueueError, toQueueError } from "../../src/queue/queue-errors.js";

const apiError = (err_code: number, description: string) => new JetStreamApiError({ code: 404, err_code, description });
/** What a publish gets when no stream listens on its subject. */
const publishNoResponders = () =>
  new jserrors.JetStreamNotEnabled("jetstream is not enabled", { cause: new RequestError("no responders", { cause: new NoRespondersError("t.tasks") }) });

describe("queue errors", () => {
  it("classifies by JetStream API error code, not by text", () => {
    expect(classifyQueueError(apiError(10059, "anything"))).toBe("stream-missing");
    expect(classifyQueueError(apiError(10014, "anything"))).toBe("consumer-missing");
    expect(classifyQueueError(apiError(10071, "stream not found"))).toBeUndefined();
    expect(classifyQueueError(new Error("stream not found"))).toBeUndefined();
    expect(classifyQueueError(new jserrors.JetStreamNotEnabled("x", { cause: apiError(10039, "x") }))).toBe("unreachable");
  });

  it("recognises no responders through the client's wrapping, and a pull's 503 status", () => {
    expect(classifyQueueError(publishNoResponders())).toBe("no-responders");
    expect(classifyQueueError(new JetStreamStatusError("no responders", 503))).toBe("no-responders");
    expect(classifyQueueError(new JetStreamStatusError("consumer deleted", 409))).toBeUndefined();
  });

  it("turns what cannot reach the queue into DependencyUnavailableError('queue'), and leaves the rest alone", () => {
    for (const err of [new TimeoutError(), publishNoResponders(), new RequestError("connection disconnected"), apiError(10059, "x")]) {
      const mapped = toQueueError(err, "publishing");
      expect(mapped).toBeInstanceOf(DependencyUnavailableError);
      expect((mapped as DependencyUnavailableError).dependency).toBe("queue");
      expect((mapped as DependencyUnavailableError).cause).toBe(err);
    }
    const full = apiError(10077, "maximum messages exceeded");
    expect(toQueueError(full, "publishing")).toBe(full);
  });
});
