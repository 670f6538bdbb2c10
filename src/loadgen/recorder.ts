// Appends records to the JSONL file synchronously, one line each, so that the
// file holds every record written even if this process is killed.
import { closeSync, openSync, writeSync } from "node:fs";
import type { LoadRecord } from "./records.js";

export interface Recorder {
  write(record: LoadRecord): void;
  close(): void;
}

export function createRecorder(path: string): Recorder {
  const fd = openSync(path, "a");
  return {
    write: (record) => {
      writeSync(fd, JSON.stringify(record) + "\n");
    },
    close: () => closeSync(fd),
  };
}
