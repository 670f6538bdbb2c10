// The WatchDeployment / WatchDeletion implementations' common part: the
// call's stream, opened on first read (after the caller is authenticated),
// passed straight through to the transport: no generator per call, and the
// same message object for every stream of an event (see watch-hub.ts).
import type { DeploymentEvent as PbDeploymentEvent } from "../gen/modeldeploy/v1/resources_pb.js";

/**
 * An iterable whose iterator comes from `open` on the first next(). A stream
 * returned (the call ended) while it was opening is closed as soon as it opens.
 */
export function openOnRead(open: () => Promise<AsyncIterator<PbDeploymentEvent>>): AsyncIterable<PbDeploymentEvent> {
  return {
    [Symbol.asyncIterator]() {
      let inner: AsyncIterator<PbDeploymentEvent> | undefined;
      let opening: Promise<AsyncIterator<PbDeploymentEvent>> | undefined;
      let returned = false;
      const start = () =>
        (opening ??= open().then((it) => {
          inner = it;
          if (returned) void it.return?.();
          return it;
        }));
      return {
        next() {
          if (inner !== undefined) return inner.next();
          return start().then((it) => it.next());
        },
        return() {
          returned = true;
          if (inner !== undefined) return inner.return?.() ?? Promise.resolve({ value: undefined, done: true });
          opening?.catch(() => {});
          return Promise.resolve({ value: undefined, done: true });
        },
      };
    },
  };
}
