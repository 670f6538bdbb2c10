// The runtime's reported capacity stays within its container's cgroup limits
// (the kernel stops the container there, whatever the machine has).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { readCgroupLimits, withinContainerLimits } from "../../src/runtime/local/container-limits.js";

const dir = mkdtempSync(path.join(tmpdir(), "md-cgroup-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A fake cgroup mount and /proc/self/cgroup, files given relative to the mount. */
function fakeCgroup(name: string, self: string, files: Record<string, string>) {
  const root = path.join(dir, name);
  for (const [file, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), content + "\n");
  }
  mkdirSync(root, { recursive: true });
  writeFileSync(path.join(root, "self"), self);
  return { root, self: path.join(root, "self") };
}

const GiB = 1024 ** 3;
const host = { cpu: 32, memoryBytes: 128 * GiB };

describe("container limits", () => {
  it("cgroup v2: the tightest of the process' cgroup and its parents", () => {
    const files = fakeCgroup("v2", "0::/kubepods/pod1/runtime\n", {
      "kubepods/pod1/runtime/memory.max": String(4 * GiB),
      "kubepods/pod1/runtime/cpu.max": "max 100000",
      "kubepods/pod1/memory.max": String(6 * GiB),
      "kubepods/pod1/cpu.max": "250000 100000",
      "kubepods/memory.max": "max",
    });
    expect(readCgroupLimits(files)).toEqual({ cpu: 2.5, memoryBytes: 4 * GiB });
    expect(withinContainerLimits(host, readCgroupLimits(files))).toEqual({ cpu: 3, memoryBytes: 4 * GiB });
  });

  it("cgroup v2 inside a container (its own namespace: the cgroup is the mount's root)", () => {
    const files = fakeCgroup("v2ns", "0::/\n", { "memory.max": String(2 * GiB), "cpu.max": "50000 100000" });
    expect(withinContainerLimits(host, readCgroupLimits(files))).toEqual({ cpu: 1, memoryBytes: 2 * GiB });
  });

  it("cgroup v1: memory.limit_in_bytes and the CFS quota; -1 and the huge 'unlimited' number are no limit", () => {
    const files = fakeCgroup("v1", "4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n0::/\n", {
      "memory/docker/abc/memory.limit_in_bytes": String(3 * GiB),
      "memory/memory.limit_in_bytes": "9223372036854771712",
      "cpu/docker/abc/cpu.cfs_quota_us": "200000",
      "cpu/docker/abc/cpu.cfs_period_us": "100000",
      "cpu/cpu.cfs_quota_us": "-1",
      "cpu/cpu.cfs_period_us": "100000",
    });
    expect(readCgroupLimits(files)).toEqual({ cpu: 2, memoryBytes: 3 * GiB });
    const unlimited = fakeCgroup("v1-none", "4:memory:/\n1:cpu:/\n", { "memory/memory.limit_in_bytes": "9223372036854771712", "cpu/cpu.cfs_quota_us": "-1" });
    expect(withinContainerLimits(host, readCgroupLimits(unlimited))).toEqual(host);
  });

  it("no cgroup file system, or limits above the machine's: the machine's capacity", () => {
    expect(readCgroupLimits({ root: path.join(dir, "none"), self: path.join(dir, "none/self") })).toEqual({});
    expect(withinContainerLimits(host, {})).toEqual(host);
    expect(withinContainerLimits(host, { cpu: 64, memoryBytes: 512 * GiB })).toEqual(host);
  });
});
