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

/**
 * Refused (resource_exhausted) when the runtime host's memory cannot hold the
 * replicas asked for beside every live deployment's (each reserves its
 * memory × maxReplicas; CPU is shared, not reserved). `exceptUid`: a
 * deployment being changed, whose own reservation the change replaces.
 */
export async function checkHostCapacity(
  deps: Pick<DeploymentsDeps, "db" | "hostCapacity">,
  resources: Resources,
  scaling: Scaling,
  exceptUid = "",
): Promise<void> {
  const host = await deps.hostCapacity?.();
  if (host === undefined || scaling.maxReplicas === 0) return;
  const perReplica = (memory: string) => parseMemory(memory) || defaultReplicaMemoryBytes;
  const wanted = perReplica(resources.memory) * scaling.maxReplicas;
  const used = (await liveReservations(deps.db, exceptUid)).reduce((sum, r) => sum + perReplica(r.memory) * Math.max(r.maxReplicas, 0), 0);
  const free = Math.max(host.memoryBytes - used, 0);
  if (wanted > free) {
    throw new RefusedError(
      "resource_exhausted",
      `not enough memory on the runtime host for ${scaling.maxReplicas} replica(s) of ${mib(perReplica(resources.memory))}: ${mib(wanted)} asked, ${mib(free)} of ${mib(host.memoryBytes)} free; lower the replicas or the memory, or stop or delete other deployments`,
      "MEMORY_CAPACITY_EXHAUSTED",
      { requestedMemoryBytes: String(wanted), availableMemoryBytes: String(free), hostMemoryBytes: String(host.memoryBytes) },
    );
  }
}
