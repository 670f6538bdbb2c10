// Baseline: a Node process doing nothing (the floor of any Node server's RSS).
import { emit, scriptArgs } from "./script.js";

scriptArgs<object>();
setInterval(() => {}, 60_000);
void emit({ ready: true });
