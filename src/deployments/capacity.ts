import { acceleratorsInUse, acceleratorsInUseByType } from "../db/deployments.js";
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
