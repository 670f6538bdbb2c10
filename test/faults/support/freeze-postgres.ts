// Freezes a private Postgres as a hung machine would: SIGSTOP to the
// postmaster and to every backend and auxiliary process. (Each Postgres child
// calls setsid(), so signalling the postmaster's process group stops the
// postmaster alone: sessions already open go on being served.)
import { readdirSync, readFileSync } from "node:fs";
import type { PrivatePostgres } from "../../helpers/private-postgres.js";

function childrenOf(parent: number): number[] {
  const out: number[] = [];
  for (const pid of readdirSync("/proc")) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent) out.push(Number(pid));
    } catch {
      // gone
    }
  }
  return out;
}

/** Stops it; returns the thaw. */
export function freezePostgres(server: PrivatePostgres): () => void {
  const postmaster = server.pid();
  if (postmaster === undefined) throw new Error("Postgres is not running");
  // The postmaster first: stopped, it forks no one new.
  process.kill(postmaster, "SIGSTOP");
  const stopped = [postmaster, ...childrenOf(postmaster)];
  for (const pid of stopped) {
    try {
      process.kill(pid, "SIGSTOP");
    } catch {
      // exited meanwhile
    }
  }
  const thaw = () => {
    process.off("exit", thaw);
    for (const pid of stopped) {
      try {
        process.kill(pid, "SIGCONT");
      } catch {
        // exited meanwhile
      }
    }
  };
  // Never leave a frozen server behind, even if the test process ends first.
  process.on("exit", thaw);
  return thaw;
}
