// The host capacity the runtime reports, within its container's limits. In
// a container (Kubernetes limits, `docker run --memory --cpus`) Node's os
// module still reports the machine's memory and cores, while the kernel
// stops the container (and every model server in it) at its cgroup's limit.
import { readFileSync } from "node:fs";
import path from "node:path";
import type { HostCapacity } from "../driver.js";

export interface CgroupLimits {
  /** Whole or fractional cores (quota ÷ period); undefined: no limit. */
  cpu?: number;
  memoryBytes?: number;
}

export interface CgroupFiles {
  /** Where the cgroup file systems are mounted. */
  root: string;
  /** This process' /proc/self/cgroup. */
  self: string;
}

const SYSTEM: CgroupFiles = { root: "/sys/fs/cgroup", self: "/proc/self/cgroup" };

/** The capacity, lowered to the container's limits where they are lower (cpu rounded up to whole cores, at least 1). */
export function withinContainerLimits(host: HostCapacity, limits: CgroupLimits = readCgroupLimits()): HostCapacity {
  return {
    cpu: limits.cpu === undefined ? host.cpu : Math.min(host.cpu, Math.max(1, Math.ceil(limits.cpu))),
    memoryBytes: limits.memoryBytes === undefined ? host.memoryBytes : Math.min(host.memoryBytes, limits.memoryBytes),
  };
}

/**
 * The tightest cpu and memory limits on this process' cgroup and its
 * ancestors (cgroup v2: cpu.max, memory.max; v1: cpu.cfs_quota_us ÷
 * cpu.cfs_period_us, memory.limit_in_bytes). No cgroup file system: none.
 */
export function readCgroupLimits(files: CgroupFiles = SYSTEM): CgroupLimits {
  const self = read(files.self) ?? "";
  const limits: CgroupLimits = {};
  const lower = (key: keyof CgroupLimits, value: number | undefined) => {
    if (value !== undefined && value > 0 && (limits[key] === undefined || value < limits[key])) limits[key] = value;
  };
  const unified = /^0::(\/.*)$/m.exec(self)?.[1];
  if (unified !== undefined) {
    for (const dir of upwards(files.root, unified)) {
      const [quota, period] = (read(path.join(dir, "cpu.max")) ?? "").split(/\s+/);
      lower("cpu", quota === "max" ? undefined : Number(quota) / Number(period));
      lower("memoryBytes", number(read(path.join(dir, "memory.max"))));
    }
  }
  const v1 = (controller: string) => new RegExp(`^\\d+:(?:[^:]*,)?${controller}(?:,[^:]*)?:(/.*)$`, "m").exec(self)?.[1];
  const memoryPath = v1("memory");
  if (memoryPath !== undefined) {
    for (const dir of upwards(path.join(files.root, "memory"), memoryPath)) lower("memoryBytes", number(read(path.join(dir, "memory.limit_in_bytes"))));
  }
  const cpuPath = v1("cpu");
  if (cpuPath !== undefined) {
    for (const dir of upwards(path.join(files.root, "cpu"), cpuPath)) {
      const quota = number(read(path.join(dir, "cpu.cfs_quota_us")));
      const period = number(read(path.join(dir, "cpu.cfs_period_us")));
      // -1: no quota.
      if (quota !== undefined && quota > 0 && period !== undefined && period > 0) lower("cpu", quota / period);
    }
  }
  return limits;
}

/** The cgroup's directory under mount, then each parent up to the mount itself. */
function upwards(mount: string, cgroup: string): string[] {
  const dirs: string[] = [];
  let rel = path.posix.normalize(cgroup);
  for (;;) {
    dirs.push(path.join(mount, rel));
    if (rel === "/" || rel === ".") return dirs;
    rel = path.posix.dirname(rel);
  }
}

function read(file: string): string | undefined {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** A positive whole number of the file ("max", -1, missing: undefined). v1's "no limit" is a huge number, which loses to any host's memory. */
function number(text: string | undefined): number | undefined {
  if (text === undefined || text === "max") return undefined;
  const n = Number(text);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}
