// Time-ordered, lowercase, URL-safe identifiers (ULID layout, Crockford base32).
import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz";

function encodeTime(ms: number, length: number): string {
  let out = "";
  let t = ms;
  for (let i = 0; i < length; i++) {
    out = ALPHABET[t % 32] + out;
    t = Math.floor(t / 32);
  }
  return out;
}

// Random bytes drawn 4 KiB at a time: one call into the CSPRNG per ~200
// ids instead of one per id (it showed in the create path's profile).
let pool = Buffer.alloc(0);
let offset = 0;

function encodeRandom(length: number): string {
  if (offset + length > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  let out = "";
  for (let i = 0; i < length; i++) out += ALPHABET[pool[offset + i]! % 32];
  offset += length;
  return out;
}

/** 26 characters: 10 of time, 16 random. Sorts by creation time. */
export function newId(now: number = Date.now()): string {
  return encodeTime(now, 10) + encodeRandom(16);
}

/** 13 characters for generated name suffixes, e.g. "01kmqm4nrn9fw". */
export function newSuffix(now: number = Date.now()): string {
  return encodeTime(now, 10) + encodeRandom(3);
}
