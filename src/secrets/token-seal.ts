// Sealing of write-only secrets (model access tokens) with AES-256-GCM, so a
// database dump alone never reveals them. A sealed value is
//   v1:<kid>:<iv>:<tag>:<ciphertext>   (base64url parts)
// with a random 12-byte IV per value; <kid> names the key that sealed it, so
// a wrong or rotated key is reported as such instead of as corrupt data.
import { createCipheriv, createDecipheriv, createHash, createHmac, randomBytes } from "node:crypto";

const VERSION = "v1";
const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export class TokenSealError extends Error {
  override readonly name = "TokenSealError";
}

export interface TokenSealer {
  /** Names the key (not secret): a hash prefix of it. */
  readonly keyId: string;
  seal(plaintext: string): string;
  /** Throws TokenSealError when the value was sealed with another key, or altered. */
  unseal(sealed: string): string;
  /**
   * A keyed digest of the plaintext: equal tokens give equal digests (so a
   * repeated request compares equal) without the digest revealing the token.
   */
  digest(plaintext: string): string;
}

/** The key as configured: base64 (or base64url) of 32 bytes. */
export function parseSecretKey(text: string): Buffer | undefined {
  const key = Buffer.from(text.trim(), "base64");
  return key.length === KEY_BYTES ? key : undefined;
}

export function newSecretKey(): string {
  return randomBytes(KEY_BYTES).toString("base64");
}

export function createTokenSealer(key: Buffer): TokenSealer {
  if (key.length !== KEY_BYTES) throw new TokenSealError(`the secret key must be ${KEY_BYTES} bytes, got ${key.length}`);
  const keyId = createHash("sha256").update("modeldeploy-key-id").update(key).digest("base64url").slice(0, 8);
  // Separate keys for encryption and for the digest: neither use weakens the other.
  const encKey = createHmac("sha256", key).update("modeldeploy token encryption").digest();
  const macKey = createHmac("sha256", key).update("modeldeploy token digest").digest();
  return {
    keyId,
    seal(plaintext) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv("aes-256-gcm", encKey, iv);
      cipher.setAAD(Buffer.from(`${VERSION}:${keyId}`));
      const body = Buffer.concat([cipher.update(plaintext, "utf8"), cipher.final()]);
      const tag = cipher.getAuthTag();
      return [VERSION, keyId, iv.toString("base64url"), tag.toString("base64url"), body.toString("base64url")].join(":");
    },
    unseal(sealed) {
      const parts = sealed.split(":");
      if (parts.length !== 5 || parts[0] !== VERSION) throw new TokenSealError("the sealed token is not in a known format");
      const [, kid, ivText, tagText, bodyText] = parts as [string, string, string, string, string];
      if (kid !== keyId) {
        throw new TokenSealError(
          `the token was sealed with key ${kid}, but the configured MODELDEPLOY_SECRET_KEY is key ${keyId}: configure the key it was sealed with`,
        );
      }
      const iv = Buffer.from(ivText, "base64url");
      const tag = Buffer.from(tagText, "base64url");
      if (iv.length !== IV_BYTES || tag.length !== TAG_BYTES) throw new TokenSealError("the sealed token is damaged");
      try {
        const decipher = createDecipheriv("aes-256-gcm", encKey, iv);
        decipher.setAAD(Buffer.from(`${VERSION}:${kid}`));
        decipher.setAuthTag(tag);
        return Buffer.concat([decipher.update(Buffer.from(bodyText, "base64url")), decipher.final()]).toString("utf8");
      } catch {
        // Node's message ("Unsupported state or unable to authenticate data") says nothing useful.
        throw new TokenSealError("the sealed token is damaged or was altered (authentication failed)");
      }
    },
    digest(plaintext) {
      return createHmac("sha256", macKey).update(plaintext, "utf8").digest("base64url");
    },
  };
}
