// The web dashboard in a real browser (Debian's chromium, driven by
// playwright-core; no browser download) against the real all-in-one process:
// sign in with the API key, create a deployment from the form, watch it
// become RUNNING live, scale it, see a refused call's code and reason, roll
// out weights that fail and read the failure's log tail, cancel an update in
// flight, roll out new weights and roll back, delete it — all in one page load. A screenshot of each main view is kept in test-artifacts/.
import http from "node:http";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeSampleModel } from "../helpers/onnx-model.js";
import { NATS_URL, createTestDatabase, type TestDatabase } from "../helpers/services.js";
import { ROOT, startSystem, type RunningSystem } from "../helpers/system.js";

const executablePath = "/usr/bin/chromium";
const launchArgs = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"];
/** Where the screenshots go (gitignored); printed by the test. */
const artifacts = path.join(ROOT, "test-artifacts", "dashboard");
/** Transitions that involve real model servers: generous on a busy machine. */
const slow = { timeout: 60_000 };

// CI installs chromium (.ci/run); elsewhere the test says it skipped rather than failing.
const haveBrowser = existsSync(executablePath) || process.env["CI"] === "true";

let tdb: TestDatabase;
let sys: RunningSystem;
let dir: string;
let browser: Browser;
/** Serves the sample model's weights, held until the test has seen the deployment downloading. */
let weights: http.Server;
let weightsBase: string;
let releaseWeights: () => void;
const weightsReleased = new Promise<void>((resolve) => (releaseWeights = resolve));
let page: Page;
const pageErrors: string[] = [];
const cspViolations: string[] = [];
const name = "tiny-linear-web";

async function shot(file: string): Promise<void> {
  await page.screenshot({ path: path.join(artifacts, file), fullPage: true });
}

beforeAll(async () => {
  if (!haveBrowser) return;
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  tdb = await createTestDatabase({ migrate: false });
  dir = mkdtempSync(path.join(tmpdir(), "md-web-e2e-"));
  const model = await writeSampleModel(dir, "v1.onnx");
  await writeSampleModel(dir, "v2.onnx");
  const bytes = readFileSync(model.path);
  weights = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream", "content-length": String(bytes.length) });
    // hang.onnx: half the bytes, then nothing (an update that runs until cancelled).
    if (req.url === "/hang.onnx") res.write(bytes.subarray(0, bytes.length >> 1));
    else void weightsReleased.then(() => res.end(bytes));
  });
  await new Promise<void>((r) => weights.listen(0, "127.0.0.1", r));
  weightsBase = `http://127.0.0.1:${(weights.address() as AddressInfo).port}`;
  writeFileSync(path.join(dir, "broken.onnx"), "this is not an onnx file");
  sys = await startSystem({ databaseUrl: tdb.url, natsUrl: NATS_URL, env: { MODELDEPLOY_ACCELERATORS: "L4-24GB:24GiB:2:4" } });
  browser = await chromium.launch({ executablePath, args: launchArgs });
  page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  page.on("pageerror", (err) => pageErrors.push(String(err)));
  page.on("console", (msg) => {
    if (msg.text().includes("Content Security Policy")) cspViolations.push(msg.text());
  });
});

afterAll(async () => {
  await browser?.close();
  releaseWeights();
  weights?.closeAllConnections();
  await new Promise<void>((r) => (weights ? weights.close(() => r()) : r()));
  const output = sys?.output() ?? "";
  const code = await sys?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  await tdb?.drop();
  if (!haveBrowser) return;
  expect(output).not.toContain("unhandled rejection");
  expect(code).toBe(0);
});

describe.skipIf(!haveBrowser)("the web dashboard in chromium", () => {
  it("creates a deployment from the form, sees it RUNNING live, scales, updates, cancels, rolls back and deletes it, with errors and failures shown", async () => {
    process.stdout.write(`dashboard screenshots: ${artifacts}\n`);
    const res = await page.goto(`${sys.httpUrl}/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()["content-type"]).toBe("text/html; charset=utf-8");
    // Set once: still there at the end means the page never reloaded.
    await page.evaluate("window.__sameLoad = true");

    // Sign in: a wrong key is refused with its code, the right one is kept for the session.
    await page.fill("input[name=apiKey]", "mdk_not-a-key");
    await page.click("button[type=submit]");
    await page.locator(".error .code", { hasText: "unauthenticated" }).waitFor(slow);
    await shot("1-sign-in.png");
    await page.fill("input[name=apiKey]", sys.apiKey);
    await page.click("button[type=submit]");
    await page.locator(".live.on").waitFor(slow);
    await page.locator(".empty", { hasText: "No deployments yet" }).waitFor();

    // Create from the form; the accelerator choices are the catalog's.
    await page.click("main a.button:has-text('New deployment')");
    await expect
      .poll(() => page.locator("select[name=acceleratorType] option").allTextContents(), slow)
      .toEqual(["none (CPU only)", "L4-24GB (24GiB, 4 available)"]);
    await page.fill("input[name=modelName]", "acme/tiny-linear");
    await page.fill("input[name=uri]", `${weightsBase}/v1.onnx`);
    await page.fill("input[name=suffix]", "web");
    await page.fill("input[name=labels]", "team=ml");
    await shot("2-create-form.png");
    await page.click("button[type=submit]");
    await page.waitForURL(`**/deployments/${name}`);

    // The list, live: the row shows the download in progress, then becomes RUNNING, without a reload.
    await page.click("header nav a:has-text('Deployments')");
    const row = page.locator(`tr[data-name=${name}]`);
    await row.locator(".state", { hasText: /^DOWNLOADING$/ }).waitFor(slow);
    await row.locator(".progress .phase", { hasText: "DOWNLOADING" }).waitFor(slow);
    await shot("3-list-downloading.png");
    releaseWeights();
    await row.locator(".state", { hasText: /^RUNNING$/ }).waitFor(slow);
    await expect.poll(() => row.locator(".replicas").textContent(), slow).toBe("1/1");
    await shot("3-list.png");

    // The deployment: instances, traffic, revisions and tasks.
    await row.locator("a").click();
    await page.waitForURL(`**/deployments/${name}`);
    const view = page.locator("section.deployment");
    await view.locator(".title .state[data-state=RUNNING]").waitFor(slow);
    await view.locator(".instances", { hasText: "1 ready of 1 desired" }).waitFor(slow);
    await expect.poll(() => view.locator(".traffic").textContent(), slow).toBe("rev 1: 100%");
    await view.locator("table.revisions tbody tr").first().waitFor();
    await view.locator("table.tasks tr", { hasText: "DEPLOY" }).locator(".state", { hasText: "COMPLETED" }).waitFor(slow);

    // Scale to 2: the live task, then 2 replicas ready.
    await view.locator("form.scale input[name=minReplicas]").fill("2");
    await view.locator("form.scale input[name=maxReplicas]").fill("2");
    await view.locator("form.scale button[type=submit]").click();
    await view.locator("table.tasks tr", { hasText: "SCALE" }).locator(".state", { hasText: "COMPLETED" }).waitFor(slow);
    await view.locator(".instances", { hasText: "2 ready of 2 desired" }).waitFor(slow);
    await view.locator(".title .state[data-state=RUNNING]").waitFor(slow);
    await expect.poll(() => view.locator(".scaling").textContent(), slow).toBe("2–2 replicas");

    // A refused call shows its code, message and ErrorInfo reason.
    await view.locator("form.scale input[name=minReplicas]").fill("3");
    await view.locator("form.scale input[name=maxReplicas]").fill("1");
    await view.locator("form.scale button[type=submit]").click();
    const refused = view.locator("form.scale .error");
    await refused.waitFor();
    expect(await refused.locator(".code").textContent()).toBe("invalid_argument");
    expect(await refused.locator(".reason b").textContent()).toBe("REPLICAS_INVALID");

    // Weights that do not load: the update fails, rolls back, and its log tail is shown.
    await view.locator("form.update input[name=uri]").fill(path.join(dir, "broken.onnx"));
    await view.locator("form.update input[name=revision]").fill("2");
    await view.locator("form.update button[type=submit]").click();
    const failedUpdate = view.locator("table.tasks tr", { hasText: "UPDATE" }).locator(".state", { hasText: "FAILED" });
    await failedUpdate.waitFor(slow);
    const failure = view.locator("tr.failure-row details[open] .failure");
    await failure.waitFor();
    expect(await failure.locator(".reason").textContent()).toMatch(/^(SERVER_EXITED|HEALTH_CHECK_TIMEOUT)$/);
    expect(await failure.textContent()).toContain("rolled back: the previous revision keeps serving");
    expect((await failure.locator(".log-tail").textContent())?.length).toBeGreaterThan(0);
    await view.locator(".title .state[data-state=RUNNING]").waitFor(slow);
    await view.locator(".instances", { hasText: "2 ready of 2 desired" }).waitFor(slow);
    await shot("4-deployment.png");

    // An update whose download never ends: its live progress, then cancelled; revision 1 keeps serving.
    await view.locator("form.update input[name=uri]").fill(`${weightsBase}/hang.onnx`);
    await view.locator("form.update input[name=revision]").fill("3");
    await view.locator("form.update button[type=submit]").click();
    const active = view.locator(".active-task");
    await active.locator(".progress .phase", { hasText: "DOWNLOADING" }).waitFor(slow);
    await view.locator(".title .state[data-state=UPDATING]").waitFor();
    await shot("5-deployment-updating.png");
    await active.locator("button", { hasText: "Cancel task" }).click();
    await view.locator("table.tasks tr", { hasText: "UPDATE" }).locator(".state", { hasText: "CANCELLED" }).waitFor(slow);
    await active.waitFor({ state: "detached", ...slow });
    await view.locator(".title .state[data-state=RUNNING]").waitFor(slow);
    expect(await view.locator(".summary").textContent()).toContain("serving 1");

    // New weights that load: revision 4 serves; then roll back to the previous model (a new revision, 5).
    await view.locator("form.update input[name=uri]").fill(path.join(dir, "v2.onnx"));
    await view.locator("form.update input[name=revision]").fill("2");
    await view.locator("form.update button[type=submit]").click();
    await expect.poll(() => view.locator(".traffic").textContent(), slow).toBe("rev 4: 100%");
    await view.locator(".title .state[data-state=RUNNING]").waitFor(slow);
    await view.locator("form.rollback button[type=submit]:enabled").click();
    await view.locator("table.tasks tr", { hasText: "ROLLBACK" }).locator(".state", { hasText: "COMPLETED" }).waitFor(slow);
    await expect.poll(() => view.locator(".traffic").textContent(), slow).toBe("rev 5: 100%");
    // The revisions are read again after the event: they may arrive a moment later.
    await view.locator("table.revisions tr.serving", { hasText: `5 (serving)` }).waitFor(slow);
    expect(await view.locator("table.revisions tr.serving").textContent()).toContain(`${weightsBase}/v1.onnx`);

    // Delete: two clicks, then DELETED live; the list no longer has it.
    await view.locator(".delete button", { hasText: "Delete…" }).click();
    await view.locator(".delete button", { hasText: `Delete ${name}` }).click();
    await view.locator(".notice.deleted").waitFor(slow);
    await view.locator(".notice.deleted a").click();
    await page.locator(".empty", { hasText: "No deployments yet" }).waitFor(slow);
    await shot("6-after-delete.png");

    expect(await page.evaluate("window.__sameLoad")).toBe(true);
    expect(pageErrors).toEqual([]);
    expect(cspViolations).toEqual([]);
  });
});
