import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
const nc = await connect({ servers: "127.0.0.1:4222" });
const jsm = await jetstreamManager(nc);
for await (const s of jsm.streams.list()) { console.log(s.config.name); if (process.argv[2] === "rm" && /^(MDE2E)/.test(s.config.name)) await jsm.streams.delete(s.config.name); }
await nc.drain();
