// What the numbers were measured on: printed at the top and kept in the JSON.
import { cpus, totalmem, freemem, loadavg, hostname } from "node:os";
import pg from "pg";
import { connectNats } from "../queue/nats.js";

export interface Machine {
  hostname: string;
  cpuModel: string;
  cores: number;
  memoryGB: number;
  freeMemoryGB: number;
  loadAverage: number[];
  node: string;
  postgres: string;
  nats: string;
}

export async function describeMachine(databaseUrl: string, natsUrl: string): Promise<Machine> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  let postgres: string;
  try {
    postgres = String((await client.query<{ server_version: string }>("show server_version")).rows[0]?.server_version ?? "?");
  } finally {
    await client.end();
  }
  const nc = await connectNats(natsUrl, "modeldeploy-bench-info");
  const nats = nc.info?.version ?? "?";
  await nc.close();
  const c = cpus();
  return {
    hostname: hostname(),
    cpuModel: c[0]?.model.trim() ?? "?",
    cores: c.length,
    memoryGB: totalmem() / 2 ** 30,
    freeMemoryGB: freemem() / 2 ** 30,
    loadAverage: loadavg(),
    node: process.version,
    postgres,
    nats,
  };
}

export function formatMachine(m: Machine): string {
  return [
    `machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGB.toFixed(1)} GB memory (${m.freeMemoryGB.toFixed(1)} GB free), load ${m.loadAverage.map((l) => l.toFixed(2)).join(" ")}`,
    `software: node ${m.node}, Postgres ${m.postgres}, nats-server ${m.nats}`,
  ].join("\n");
}
