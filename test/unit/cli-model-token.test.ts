import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { create } from "@bufbuild/protobuf";
import { afterAll, describe, expect, it } from "vitest";
import { modelFrom } from "../../src/cli/args.js";
import { ModelSourceSchema } from "../../src/gen/modeldeploy/v1/resources_pb.js";

const dir = mkdtempSync(path.join(tmpdir(), "md-cli-token-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("the CLI's model token (--token-file)", () => {
  const base = create(ModelSourceSchema, { name: "acme/private", uri: "https://weights.example/m.onnx", tokenSet: true });

  it("reads the token from a file, trimmed", () => {
    const file = path.join(dir, "token");
    writeFileSync(file, "s3cr3t\n");
    const m = modelFrom({ "token-file": file }, create(ModelSourceSchema));
    expect(m.token).toBe("s3cr3t");
  });

  it("refuses to change a model with a token without the token again (it would be dropped)", () => {
    expect(() => modelFrom({ revision: "2" }, base)).toThrow(/--token-file/);
    const file = path.join(dir, "token2");
    writeFileSync(file, "s3cr3t");
    expect(modelFrom({ revision: "2", "token-file": file }, base)).toMatchObject({ revision: "2", token: "s3cr3t", tokenSet: false });
  });
});
