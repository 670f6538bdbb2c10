// Every deployment of the workspace, live (WatchDeployments): a snapshot,
// then each change; a dropped stream resumes after the last cursor it gave.
import { Code, ConnectError } from "@connectrpc/connect";
import { useEffect, useState } from "preact/hooks";
import { DeploymentState, EventType, type Deployment, type DeploymentEvent, type Task } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import type { Api } from "./api.js";
import { keepStreaming } from "./streams.js";

export interface Row {
  deployment: Deployment;
  /** The last task an event carried (the active one while a change runs). */
  task: Task | undefined;
}

export interface WorkspaceView {
  rows: Row[];
  /** false until the first snapshot, and while reconnecting. */
  live: boolean;
  loaded: boolean;
  error: unknown;
}

function apply(rows: Map<string, Row>, e: DeploymentEvent): void {
  const d = e.deployment;
  if (d === undefined) return;
  if (e.type === EventType.DELETED || d.state === DeploymentState.DELETED) {
    rows.delete(d.name);
    return;
  }
  rows.set(d.name, { deployment: d, task: e.task ?? rows.get(d.name)?.task });
}

export function useWorkspace(api: Api, onUnauthenticated: (err: unknown) => void): WorkspaceView {
  const [view, setView] = useState<WorkspaceView>({ rows: [], live: false, loaded: false, error: undefined });
  useEffect(() => {
    const rows = new Map<string, Row>();
    let cursor = "";
    let flush: ReturnType<typeof setTimeout> | undefined;
    // Events come in bursts (a snapshot, a rollout's progress): one render per burst.
    const render = () => {
      flush ??= setTimeout(() => {
        flush = undefined;
        const sorted = [...rows.values()].sort((a, b) => a.deployment.name.localeCompare(b.deployment.name));
        setView((v) => ({ ...v, rows: sorted }));
      }, 30);
    };
    const stop = keepStreaming({
      async run(signal, onOpen) {
        let opened = false;
        const open = () => {
          if (opened) return;
          opened = true;
          // A new stream (no cursor yet) starts with a snapshot of everything.
          if (cursor === "") rows.clear();
          render();
          onOpen();
        };
        const stream = api.deployments.watchDeployments({ afterCursor: cursor }, { signal, onHeader: open });
        // The API sends a stream's headers with its first event, and an empty
        // workspace's snapshot has none: a list says whether there is nothing to wait for.
        if (cursor === "") {
          api.deployments.listDeployments({ pageSize: 1 }, { signal }).then(
            (list) => list.deployments.length === 0 && open(),
            () => {}, // the stream reports what is wrong
          );
        }
        try {
          for await (const e of stream) {
            apply(rows, e);
            if (e.cursor) cursor = e.cursor;
            render();
          }
        } catch (err) {
          // A cursor the API no longer knows (CURSOR_INVALID): start again from a snapshot.
          if (err instanceof ConnectError && err.code === Code.InvalidArgument) cursor = "";
          throw err;
        }
      },
      onStatus(live, error) {
        setView((v) => ({ ...v, live, loaded: v.loaded || live, error: live ? undefined : error }));
        if (error !== undefined) onUnauthenticated(error);
      },
      isFinal: () => false,
    });
    return () => {
      stop();
      clearTimeout(flush);
    };
  }, [api]);
  return view;
}
