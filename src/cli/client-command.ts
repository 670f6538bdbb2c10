import type { ApiClients } from "./client.js";

/** A client command: its arguments in, its exit code out (errors are thrown). */
export type ClientCommand = (api: ApiClients, argv: string[]) => Promise<number>;
