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

function encodeRandom(length: number): string {
  const bytes = randomBytes(length);
  let out = "";
  for (let i = 0; i < length; i++) out += ALPHABET[bytes[i]! % 32];
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
