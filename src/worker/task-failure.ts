import type { Failure } from "../domain/types.js";

/** A failure that ends the task (as opposed to a retryable hiccup). */
export class TaskFailure extends Error {
  override readonly name = "TaskFailure";
  constructor(readonly failure: Failure) {
    super(failure.message);
  }
}
