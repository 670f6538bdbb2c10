// The modeldeploy command line (yargs): every client command, its flags, help
// and shell completion. Server commands are listed here for help and
// completion; the launcher runs them without loading any of this.
import yargs, { type Argv, type FallbackCompletionFunction, type Options } from "yargs";
import { modelOptions, resourceOptions, rolloutOptions, scalingOptions, str, UsageError } from "./args.js";
import { changeCommands } from "./change-commands.js";
import { createApiClients } from "./client.js";
import { err, type ClientCommand, type CommandContext, type Flags, type Output } from "./client-command.js";
import { describeClientError } from "./client-errors.js";
import { deploymentCommands } from "./deployment-commands.js";
import { historyCommands } from "./history-commands.js";
import { login, logout } from "./login.js";
import { resolveSettings, type ClientSettings } from "./settings.js";

export type RunServerCommand = (command: string, argv: string[]) => Promise<number>;

const commands: Record<string, ClientCommand> = { ...deploymentCommands, ...changeCommands, ...historyCommands };

const s = (describe: string): Options => ({ type: "string", describe, requiresArg: true });
const strings = (o: Record<string, unknown>, describe: Record<string, string>) => Object.fromEntries(Object.keys(o).map((k) => [k, s(describe[k] ?? "")]));

const modelFlags = strings(modelOptions, {
  model: "model name, e.g. acme/tiny-linear",
  uri: "weights: file path, file://, http(s)://, s3://, hf://",
  sha256: "expected checksum of the weights",
  revision: "model revision label",
  task: "model task",
  runtime: "model server runtime",
  "token-file": "file holding the weights' access token (never on the command line)",
});
const resourceFlags = strings(resourceOptions, {
  threads: "threads per replica",
  "max-batch-size": "largest batch a replica runs",
  cpu: "CPU cores per replica",
  memory: "memory per replica, e.g. 2Gi",
  "accelerator-type": "accelerator type (see `catalog`)",
  "accelerator-count": "accelerators per replica",
});
const scalingFlags = strings(scalingOptions, {
  replicas: "replicas (sets --min and --max)",
  min: "fewest replicas (0 with --max above it: idle without requests, woken by the next)",
  max: "most replicas",
  "target-in-flight": "in-flight requests per replica the autoscaler aims for (default 4)",
  "scale-down-delay": "seconds load must stay low before a replica is removed (default 60)",
  "wake-timeout": "seconds a request to an idle deployment waits for a replica (default 60)",
});
const rolloutFlags = strings(rolloutOptions, {
  canary: "roll out in steps PERCENT:PAUSE_SECONDS,… of traffic to the new revision, e.g. 10:30,50:30; then 100%",
  "max-error-rate": "fraction of the new revision's requests that may fail in a step (default 0.01)",
  "min-requests": "requests a step must count before it is judged (default 20)",
});
const waitFlag = { wait: { type: "boolean", describe: "follow the task; exit 0 when it succeeded, 1 with its failure otherwise" } } as const;
const requestIdFlag = { "request-id": s("idempotency key: the same id answers the same task") };
const deadlineFlag = { "progress-deadline": s("seconds the task may go without progress (0: the server's default)") };

const nameArg = (y: Argv) => y.positional("name", { type: "string", describe: "deployment name" });
const taskArg = (y: Argv) => y.positional("task-id", { type: "string", describe: "task id" });

/** Client commands and their flags: [usage, description, flags, positional]. */
const clientCommands: [string, string, Record<string, Options>, ((y: Argv) => Argv)?][] = [
  [
    "deploy",
    "deploy a model: a new deployment, named from the model",
    {
      ...modelFlags,
      ...resourceFlags,
      ...scalingFlags,
      suffix: s("name suffix"),
      label: s("k=v (repeatable)"),
      ...deadlineFlag,
      ...requestIdFlag,
      ...waitFlag,
    },
  ],
  ["get <name>", "the whole deployment", {}, nameArg],
  ["list", "deployments of the workspace", { state: s("only these states (repeatable, or a,b)"), "label-selector": s("k=v,…") }],
  ["status <name>", "the deployment's latest task", {}, nameArg],
  ["task <task-id>", "one task", {}, taskArg],
  [
    "tasks <name>",
    "the deployment's tasks, newest first",
    { status: s("only these statuses (repeatable, or a,b)"), "page-size": s("tasks per call") },
    nameArg,
  ],
  ["revisions <name>", "every revision; * marks the one serving", {}, nameArg],
  ["watch <name>", "the deployment's events, live, until it is deleted", { after: s("resume after this event sequence") }, nameArg],
  [
    "update <name>",
    "change the model, resources and/or scaling; flags not given stay",
    { ...modelFlags, ...resourceFlags, ...scalingFlags, ...rolloutFlags, ...deadlineFlag, ...requestIdFlag, ...waitFlag },
    nameArg,
  ],
  ["scale <name>", "scaling alone (no new revision); --replicas 0 stops, more resumes", { ...scalingFlags, ...requestIdFlag, ...waitFlag }, nameArg],
  [
    "rollback <name>",
    "roll out an earlier revision's model and resources",
    { revision: s("revision number (default: the previous one)"), ...rolloutFlags, ...deadlineFlag, ...requestIdFlag, ...waitFlag },
    nameArg,
  ],
  ["cancel <task-id>", "stop a PENDING or RUNNING task (the serving revision keeps serving)", {}, taskArg],
  ["delete <name>", "stop and remove the deployment", { ...requestIdFlag, ...waitFlag }, nameArg],
  ["catalog", "accelerator types and how many are free", {}],
];

const serverCommands: [string, string][] = [
  ["start", "API, worker and runtime in one process (embeds Postgres and nats-server without DATABASE_URL / NATS_URL)"],
  ["api", "the API alone (needs DATABASE_URL and NATS_URL)"],
  ["worker", "a worker alone (needs DATABASE_URL and NATS_URL)"],
  ["runtime", "the local runtime agent alone (model servers + inference gateway)"],
  ["migrate", "apply database migrations"],
];

/** Names for completing a NAME argument; nothing when no server answers quickly. */
async function deploymentNames(argv: Flags): Promise<string[]> {
  const settings = resolveSettings({ url: str(argv, "url"), apiKey: str(argv, "api-key") });
  const api = createApiClients(settings.url, settings.apiKey);
  const res = await api.deployments.listDeployments({ pageSize: 200 }, { timeoutMs: 1500 });
  return res.deployments.map((d) => d.name);
}

const takesName = new Set(["get", "status", "tasks", "revisions", "watch", "update", "scale", "rollback", "delete"]);

/**
 * Commands and flags as yargs completes them, and deployment names where a
 * NAME goes; `finished` resolves once the answer is written (yargs does not
 * wait for an asynchronous completion before its parse resolves).
 */
function completer(finished: () => void): FallbackCompletionFunction {
  return (current, parsed, defaults, done) => {
    const reply = (words: string[]) => {
      done(words);
      finished();
    };
    defaults((_e, completions) => {
      const words = (parsed as { _: (string | number)[] })._.map(String);
      const command = words.find((w) => w !== "modeldeploy");
      if (command && takesName.has(command) && !current.startsWith("-") && words.length <= 3) {
        deploymentNames(parsed as Flags).then(
          (names) => reply([...(completions ?? []), ...names.filter((n) => n.startsWith(current))]),
          () => reply(completions ?? []),
        );
      } else reply(completions ?? []);
    });
  };
}

export async function runCli(argv: string[], runServer: RunServerCommand): Promise<number> {
  let code = 0;
  const completing = argv.includes("--get-yargs-completions");
  let completed = () => {};
  const answered = new Promise<void>((resolve) => (completed = resolve));
  // With exitProcess(false), yargs still runs the handler after a usage error,
  // and while completing a line.
  let failed = completing;
  let settings: ClientSettings | undefined;
  const client = (name: string) => async (raw: Record<string, unknown>) => {
    if (failed) return;
    const args = raw as Flags;
    try {
      settings = resolveSettings({ url: str(args, "url"), apiKey: str(args, "api-key") });
      const output: Output = args["json"] === true ? "json" : ((str(args, "output") as Output | undefined) ?? "text");
      const ctx: CommandContext = { api: createApiClients(settings.url, settings.apiKey), args, output, progress: args["progress"] !== false };
      code = await commands[name]!(ctx);
    } catch (e) {
      err(describeClientError(e, settings));
      code = e instanceof UsageError ? 2 : 1;
    }
  };

  let y = yargs(argv)
    .scriptName("modeldeploy")
    .usage("usage: modeldeploy <command> [options]")
    .parserConfiguration({ "duplicate-arguments-array": true, "strip-aliased": true })
    .option("url", { type: "string", describe: "API address (or MODELDEPLOY_URL, or `login`; default http://127.0.0.1:8080)", global: true })
    .option("api-key", { type: "string", describe: "API key (or MODELDEPLOY_API_KEY, or `login`)", global: true })
    .option("output", { alias: "o", choices: ["text", "json", "name"], describe: "json: the API's JSON; name: the deployment name alone", global: true })
    .option("json", { type: "boolean", describe: "same as -o json", global: true, hidden: true })
    .option("progress", { type: "boolean", default: true, describe: "live progress on a terminal (--no-progress: plain lines)", global: true })
    .group(["url", "api-key", "output", "progress", "help"], "Global options:");

  for (const [name, describe] of serverCommands) {
    y = y.command(name, describe, {}, async () => {
      if (!failed) code = await runServer(name, argv.slice(1));
    });
  }
  y = y.command(
    "keys create",
    "create an API key (needs DATABASE_URL); prints the key alone",
    (k) => k.option("workspace", s("workspace")).option("scopes", s("a,b")).option("name", s("principal name")),
    async () => {
      if (!failed) code = await runServer("keys", argv.slice(1));
    },
  );
  for (const [usage, describe, options, positional] of clientCommands) {
    const name = usage.split(" ")[0]!;
    y = y.command(usage, describe, (c) => (positional ? positional(c.options(options)) : c.options(options)), client(name));
  }
  y = y
    .command(
      "login",
      "check an API address and key, and save them for the client commands",
      (c) => c.option("api-key-file", s("file holding the key (- for stdin); default: MODELDEPLOY_API_KEY, else .modeldeploy/bootstrap-key here")),
      async (raw) => {
        if (failed) return;
        try {
          settings = resolveSettings({ url: str(raw as Flags, "url") });
          code = await login(raw as Flags);
        } catch (e) {
          err(describeClientError(e, settings));
          code = 1;
        }
      },
    )
    .command("logout", "forget the saved address and key", {}, () => {
      if (!failed) code = logout();
    })
    .command(
      "sample-model <path>",
      "write a tiny ONNX model (y = x·W + b, ids + 1) to try deploys with",
      (c) =>
        c
          .positional("path", { type: "string" })
          .option("fail-above", s("instead, a model that fails (500) every request with a row whose x[…,0] is above this, for canary trials")),
      client("sample-model"),
    )
    .completion("completion", "print a bash/zsh completion script (modeldeploy completion >> ~/.bashrc)", completer(completed))
    .demandCommand(1, "give a command; `modeldeploy --help` lists them")
    // Completing a partial line must not fail on the completion flag itself.
    .strict(!completing)
    .help()
    .alias("help", "h")
    .version(false)
    .wrap(Math.min(130, process.stdout.columns || 130))
    .epilog(
      "Client commands find the API with --url/--api-key, MODELDEPLOY_URL/MODELDEPLOY_API_KEY,\n" +
        "or the file `modeldeploy login` saves. `modeldeploy <command> --help` shows a command's flags.",
    )
    .fail((msg, e) => {
      if (e) throw e;
      if (failed) return;
      failed = true;
      const usage = clientCommands.find(([u]) => u.split(" ")[0] === argv[0])?.[0];
      const text =
        argv[0] && msg === `Unknown argument: ${argv[0]}`
          ? `unknown command "${argv[0]}"`
          : usage && msg.startsWith("Not enough non-option arguments")
            ? `usage: modeldeploy ${usage} [options]`
            : msg;
      err(`error: ${text}\n(\`modeldeploy --help\` lists the commands, \`modeldeploy <command> --help\` a command's flags)`);
      code = 2;
    })
    .exitProcess(false);
  if (argv.length === 0) {
    y.showHelp();
    return 2;
  }
  if (argv.length === 1 && argv[0] === "help") {
    y.showHelp("log");
    return 0;
  }
  await y.parseAsync();
  // Bounded: a line yargs answers without asking the completer must not hang the shell.
  if (completing) await Promise.race([answered, new Promise((r) => setTimeout(r, 3000))]);
  return code;
}
