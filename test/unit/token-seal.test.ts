import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { modelFromPb, modelToPb } from "../../src/api/convert.js";
import { comparableModel } from "../../src/domain/types.js";
import { MAX_TOKEN_LENGTH, validateModel } from "../../src/domain/validation.js";
import { create } from "@bufbuild/protobuf";
import { ModelSourceSchema } from "../../src/gen/modeldeploy/v1/resources_pb.js";
import { createTokenSealer, newSecretKey, parseSecretKey, TokenSealError } from "../../src/secrets/token-seal.js";

const sealer = () => createTokenSealer(randomBytes(32));

describe("token sealing", () => {
  it("round-trips, with a different ciphertext each time and no plaintext in it", () => {
    const s = sealer();
    const a = s.seal("s3cr3t");
    const b = s.seal("s3cr3t");
    expect(a).not.toBe(b);
    expect(a).toMatch(/^v1:[A-Za-z0-9_-]{8}:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+:[A-Za-z0-9_-]+$/);
    expect(a).not.toContain("s3cr3t");
    expect(s.unseal(a)).toBe("s3cr3t");
    expect(s.unseal(b)).toBe("s3cr3t");
  });

  it("refuses a tampered value", () => {
    const s = sealer();
    const parts = s.seal("s3cr3t").split(":");
    const body = Buffer.from(parts[4]!, "base64url");
    body[0] = body[0]! ^ 1;
    parts[4] = body.toString("base64url");
    expect(() => s.unseal(parts.join(":"))).toThrow(TokenSealError);
    expect(() => s.unseal(parts.join(":"))).toThrow(/altered/);
    const tag = Buffer.from(s.seal("s3cr3t").split(":")[3]!, "base64url");
    tag[0] = tag[0]! ^ 1;
    const withTag = s.seal("s3cr3t").split(":");
    withTag[3] = tag.toString("base64url");
    expect(() => s.unseal(withTag.join(":"))).toThrow(/altered/);
    expect(() => s.unseal("not-sealed")).toThrow(/format/);
  });

  it("refuses a value sealed with another key, naming both keys", () => {
    const a = sealer();
    const b = sealer();
    const sealed = a.seal("s3cr3t");
    expect(() => b.unseal(sealed)).toThrow(TokenSealError);
    expect(() => b.unseal(sealed)).toThrow(new RegExp(`sealed with key ${a.keyId}.*is key ${b.keyId}`));
    // A forged key id does not get past the authentication either.
    const forged = sealed.replace(`:${a.keyId}:`, `:${b.keyId}:`);
    expect(() => b.unseal(forged)).toThrow(/altered/);
  });

  it("digests equal tokens equally, per key, without the plaintext", () => {
    const s = sealer();
    expect(s.digest("s3cr3t")).toBe(s.digest("s3cr3t"));
    expect(s.digest("s3cr3t")).not.toBe(s.digest("other"));
    expect(sealer().digest("s3cr3t")).not.toBe(s.digest("s3cr3t"));
    expect(s.digest("s3cr3t")).not.toContain("s3cr3t");
  });

  it("parses configured keys: base64 of 32 bytes only", () => {
    expect(parseSecretKey(newSecretKey())?.length).toBe(32);
    expect(parseSecretKey(randomBytes(16).toString("base64"))).toBeUndefined();
    expect(parseSecretKey("")).toBeUndefined();
  });
});

describe("tokens at the API boundary", () => {
  const pb = (token: string, uri = "https://weights.example/m.onnx") => create(ModelSourceSchema, { name: "acme/private", uri, token });

  it("keeps only the sealed token; responses say tokenSet and never the token", () => {
    const s = sealer();
    const model = modelFromPb(pb("s3cr3t"), s);
    expect(JSON.stringify(model)).not.toContain("s3cr3t");
    expect(s.unseal(model.tokenSealed)).toBe("s3cr3t");
    const out = modelToPb(model);
    expect(out?.token).toBe("");
    expect(out?.tokenSet).toBe(true);
    expect(JSON.stringify(out)).not.toContain("s3cr3t");
    expect(modelToPb(modelFromPb(pb(""), s))?.tokenSet).toBe(false);
  });

  it("compares the same token equal although each sealing differs", () => {
    const s = sealer();
    const a = modelFromPb(pb("s3cr3t"), s);
    const b = modelFromPb(pb("s3cr3t"), s);
    expect(a.tokenSealed).not.toBe(b.tokenSealed);
    expect(comparableModel(a)).toEqual(comparableModel(b));
    expect(comparableModel(modelFromPb(pb("other"), s))).not.toEqual(comparableModel(a));
  });

  it("refuses a token too long or not printable, without quoting it", () => {
    const s = sealer();
    const long = "x".repeat(MAX_TOKEN_LENGTH + 1);
    expect(() => modelFromPb(pb(long), s)).toThrow(/model.token|longer/);
    try {
      modelFromPb(pb("s3cr3t\u00e9"), s);
      expect.unreachable();
    } catch (err) {
      expect(JSON.stringify(err) + String(err)).not.toContain("s3cr3t");
      expect(String((err as Error).message)).toMatch(/printable ASCII/);
    }
  });

  it("refuses a token on a file:// model (MODEL_SOURCE_INVALID on model.token)", () => {
    const model = modelFromPb(pb("s3cr3t", "file:///models/m.onnx"), sealer());
    const problems = validateModel(model);
    expect(problems).toEqual([expect.objectContaining({ field: "model.token", reason: "MODEL_SOURCE_INVALID" })]);
    expect(validateModel(modelFromPb(pb("s3cr3t"), sealer()))).toEqual([]);
  });
});
