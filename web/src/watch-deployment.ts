// One deployment, live (WatchDeployment), with its revisions and recent
// tasks: the lists are read again whenever an event says something finished
// or changed state; progress events update the task they carry in place; the
// autoscaler's last change (a SCALED event) is kept with its reason.
import { useEffect, useState } from "preact/hooks";
import { Code, ConnectError } from "@connectrpc/connect";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { EventType, TaskStatus, type Deployment, type DeploymentEvent, type DeploymentRevision, type Task } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import type { Api } from "./api.js";
import { keepStreaming } from "./streams.js";

export interface DeploymentView {
  deployment: Deployment | undefined;
  revisions: DeploymentRevision[];
  /** Newest first. */
  tasks: Task[];
  live: boolean;
  deleted: boolean;
  error: unknown;
  /** The autoscaler's last change seen on this page: its reason and when. */
  scaled: { message: string; time: Timestamp | undefined } | undefined;
}

const empty: DeploymentView = { deployment: undefined, revisions: [], tasks: [], live: false, deleted: false, error: undefined, scaled: undefined };
const recentTasks = 20;

const settledStatus = (t: Task) => t.status === TaskStatus.COMPLETED || t.status === TaskStatus.FAILED || t.status === TaskStatus.CANCELLED;

/**
 * The later of two readings of one task: a task only moves forward (its
 * percent never decreases, a settled task stays settled), and a list read
 * that started before an event may answer after it.
 */
function later(a: Task, b: Task): Task {
  if (settledStatus(a) !== settledStatus(b)) return settledStatus(a) ? a : b;
  return (a.progress?.percent ?? 0) > (b.progress?.percent ?? 0) ? a : b;
}

/** The list as read, each task no older than the one already shown. */
function mergeList(shown: Task[], read: Task[]): Task[] {
  const byId = new Map(shown.map((t) => [t.id, t]));
  return read.map((t) => {
    const seen = byId.get(t.id);
    return seen ? later(seen, t) : t;
  });
}

function mergeTask(tasks: Task[], t: Task | undefined): Task[] {
  if (t === undefined || t.id === "") return tasks;
  const i = tasks.findIndex((x) => x.id === t.id);
  if (i === -1) return [t, ...tasks];
  const next = tasks.slice();
  next[i] = t;
  return next;
}

export function useDeployment(api: Api, name: string, onUnauthenticated: (err: unknown) => void): DeploymentView {
  const [view, setView] = useState<DeploymentView>(empty);
  useEffect(() => {
    setView(empty);
    let afterSequence: bigint | undefined;
    let reading = false;
    let again = false;
    let gone = false;
    // One read of the lists at a time; a change during it reads once more after.
    const readLists = async () => {
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      try {
        do {
          again = false;
          const [revs, tasks] = await Promise.all([
            api.deployments.listDeploymentRevisions({ name }),
            api.deployments.listDeploymentTasks({ name, pageSize: recentTasks }),
          ]);
          if (gone) return;
          setView((v) => ({ ...v, revisions: revs.revisions, tasks: mergeList(v.tasks, tasks.tasks) }));
        } while (again && !gone);
      } catch {
        // The watch reports what is wrong; the lists are read again on its next event.
      } finally {
        reading = false;
      }
    };
    const apply = (e: DeploymentEvent) => {
      afterSequence = e.sequence;
      const deleted = e.type === EventType.DELETED;
      const scaled = e.type === EventType.SCALED ? { message: e.message || "replica count changed", time: e.time } : undefined;
      setView((v) => ({
        ...v,
        deployment: e.deployment ?? v.deployment,
        tasks: mergeTask(v.tasks, e.task),
        deleted: v.deleted || deleted,
        scaled: scaled ?? v.scaled,
      }));
      if (e.type !== EventType.PROGRESS && !deleted) void readLists();
    };
    const stop = keepStreaming({
      async run(signal, onOpen) {
        const req = afterSequence === undefined ? { name } : { name, afterSequence };
        for await (const e of api.deployments.watchDeployment(req, { signal, onHeader: onOpen })) apply(e);
      },
      onStatus(live, error) {
        setView((v) => ({ ...v, live, error: live ? undefined : error }));
        if (error !== undefined) onUnauthenticated(error);
      },
      // Gone (deleted, or never was): nothing to wait for.
      isFinal: (err) => err instanceof ConnectError && err.code === Code.NotFound,
    });
    return () => {
      gone = true;
      stop();
    };
  }, [api, name]);
  return view;
}
