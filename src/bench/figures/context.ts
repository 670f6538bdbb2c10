// What every figure gets: the options, the system under test and its API,
// a client, and a database of its own for the tight-loop baselines.
import type { BenchClient } from "../client.js";
import type { BenchOptions } from "../options.js";
import type { Api, BenchDatabase, BenchSystem } from "../services.js";

export interface FigureContext {
  options: BenchOptions;
  system: BenchSystem;
  api: Api;
  client: BenchClient;
  /** Not the system's: the tight loops write here, so no relay or worker sees their rows. */
  rawDb: BenchDatabase;
  log(message: string): void;
}
