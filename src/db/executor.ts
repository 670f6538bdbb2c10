import type { Kysely, Transaction } from "kysely";
import type { Database } from "./database.js";

/** Repositories accept the database or a transaction. */
export type Executor = Kysely<Database> | Transaction<Database>;
