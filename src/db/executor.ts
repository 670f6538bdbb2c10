import type { Kysely, Transaction } from "kysely";
import type { Database } from "./database.js";

/** Repositories accept the database or a transaction. */
export type Executor = Kysely<Database> | Transaction<Database>;

/** A transaction: what a repository that takes row locks requires (a lock outside one ends at once). */
export type Trx = Transaction<Database>;
