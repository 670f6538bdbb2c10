// A message yielded to many server streams (a watch event fanned out to every
// watcher of a deployment) is serialized once: its bytes are kept beside the
// message object for as long as that object lives.
import { create, isMessage, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";

export interface SharedSerializer {
  serialize(schema: DescMessage, value: unknown): Buffer;
  /** Messages serialized, and writes that reused bytes serialized before. */
  readonly stats: { serialized: number; reused: number };
}

export function createSharedSerializer(): SharedSerializer {
  const bytesOf = new WeakMap<object, Buffer>();
  const stats = { serialized: 0, reused: 0 };
  return {
    stats,
    serialize(schema, value) {
      const shared = isMessage(value, schema);
      if (shared) {
        const known = bytesOf.get(value);
        if (known !== undefined) {
          stats.reused++;
          return known;
        }
      }
      const msg = shared ? value : create(schema, value as never);
      const bytes = toBinary(schema, msg as MessageShape<DescMessage>);
      const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      stats.serialized++;
      if (shared) bytesOf.set(value, buf);
      return buf;
    },
  };
}
