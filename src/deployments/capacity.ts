import { acceleratorsInUse, acceleratorsInUseByType } from "../db/deployments.js";
import { liveReservations } from "../db/host-capacity.js";
import { parseMemory } from "../domain/quantities.js";
import { RefusedError } from "../domain/errors.js";
import type { Resources, Scaling } from "../domain/types.js";
import type { CatalogEntry } from "../domain/validation.js";
import type { DeploymentsDeps } from "./deps.js";

/**
 * Refused (resource_exhausted) when the catalog has too few accelerators of
 * the type left; `exceptUid`: a deployment being changed, whose own holding
 * the change replaces.
 */
export async function checkCapacity(deps: Pick<DeploymentsDeps, "db" | "catalog">, resources: Resources, scaling: Scaling, exceptUid = ""): Promise<void> {
  if (!resources.acceleratorType) return;
  const entry = deps.catalog.find((c) => c.name === resources.acceleratorType);
  if (!entry) return;
  const used = await acceleratorsInUse(deps.db, entry.name, exceptUid);
  const wanted = resources.acceleratorCount * Math.max(scaling.maxReplicas, 1);
  const available = Math.max(entry.total - used, 0);
  if (used + wanted > entry.total) {
    throw new RefusedError(
      "resource_exhausted",
      `not enough ${entry.name} accelerators: ${wanted} requested, ${available} of ${entry.total} available; lower the count or replicas, or try later`,
      "ACCELERATOR_CAPACITY_EXHAUSTED",
      {
        requestedAcceleratorType: entry.name,
        requestedAcceleratorCount: String(wanted),
        availableAcceleratorCount: String(available),
      },
    );
  }
}

export interface AcceleratorAvailability extends CatalogEntry {
  /** Free now: the total less what live deployments hold. */
  available: number;
}

/** The catalog validation uses, with what is free of each type now. */
export async function acceleratorCatalog(deps: Pick<DeploymentsDeps, "db" | "catalog">): Promise<AcceleratorAvailability[]> {
  const used = await acceleratorsInUseByType(deps.db);
  return deps.catalog.map((entry) => ({ ...entry, available: Math.max(entry.total - (used.get(entry.name) ?? 0), 0) }));
}

/** What a replica that names no memory reserves on the host. */
export const defaultReplicaMemoryBytes = 256 * 1024 * 1024;

const mib = (bytes: number) => `${Math.round(bytes / (1024 * 1024))}MiB`;
const cores = (n: number) => String(Math.round(n * 1000) / 1000);

/**
 * Refused (resource_exhausted) when the runtime host cannot hold the replicas
 * asked for beside every live deployment's. Each replica reserves its memory
 * (256 MiB when unset) against the host's memory, and its cpu (none when
 * unset: best effort, as a Kubernetes pod without requests) against the
 * host's cores × the CPU allocation ratio. `exceptUid`: a deployment being
 * changed, whose own reservation the change replaces.
 */
export async function checkHostCapacity(
  deps: Pick<DeploymentsDeps, "db" | "hostCapacity" | "cpuAllocationRatio">,
  resources: Resources,
  scaling: Scaling,
  exceptUid = "",
): Promise<void> {
  // Read through deps.db: inside a change, its transaction (never a second connection).
  const host = await deps.hostCapacity?.(deps.db);
  if (host === undefined || scaling.maxReplicas === 0) return;
  const live = await liveReservations(deps.db, exceptUid);
  const replicas = (r: { maxReplicas: number }) => Math.max(r.maxReplicas, 0);

  const perReplica = (memory: string) => parseMemory(memory) || defaultReplicaMemoryBytes;
  const wanted = perReplica(resources.memory) * scaling.maxReplicas;
  const used = live.reduce((sum, r) => sum + perReplica(r.memory) * replicas(r), 0);
  const free = Math.max(host.memoryBytes - used, 0);
  if (wanted > free) {
    throw new RefusedError(
      "resource_exhausted",
      `not enough memory on the runtime host for ${scaling.maxReplicas} replica(s) of ${mib(perReplica(resources.memory))}: ${mib(wanted)} asked, ${mib(free)} of ${mib(host.memoryBytes)} free; lower the replicas or the memory, or stop or delete other deployments`,
      "MEMORY_CAPACITY_EXHAUSTED",
      { requestedMemoryBytes: String(wanted), availableMemoryBytes: String(free), hostMemoryBytes: String(host.memoryBytes) },
    );
  }

  const ratio = deps.cpuAllocationRatio ?? 4;
  const wantedCpu = resources.cpu * scaling.maxReplicas;
  if (wantedCpu === 0) return;
  const offered = host.cpu * ratio;
  const freeCpu = Math.max(offered - live.reduce((sum, r) => sum + r.cpu * replicas(r), 0), 0);
  // A thousandth of a core of slack: sums of fractional cores are not exact.
  if (wantedCpu > freeCpu + 0.001) {
    throw new RefusedError(
      "resource_exhausted",
      `not enough CPU on the runtime host for ${scaling.maxReplicas} replica(s) of ${cores(resources.cpu)} CPU: ${cores(wantedCpu)} asked, ${cores(freeCpu)} of ${cores(offered)} free (${host.cpu} cores × allocation ratio ${ratio}); lower the replicas or the cpu, or stop or delete other deployments`,
      "CPU_CAPACITY_EXHAUSTED",
      { requestedCpu: cores(wantedCpu), availableCpu: cores(freeCpu), hostCpu: String(host.cpu), cpuAllocationRatio: String(ratio) },
    );
  }
}
