// The client commands' usage text, apart so that `modeldeploy --help` and the
// server commands do not load the client (and its ONNX sample-model code).
export const clientUsage = `Client commands (MODELDEPLOY_URL, default http://127.0.0.1:8080; MODELDEPLOY_API_KEY):
  deploy --model NAME --uri URI [--sha256 HEX] [--token-file PATH] [--revision R] [--suffix S] [--replicas N | --min N --max N]
         [--threads N] [--max-batch-size N] [--cpu N] [--memory Q] [--label k=v]... [--progress-deadline SECONDS]
         [--request-id ID] [--wait] [--json]
  update NAME [--model NAME] [--uri URI] [--sha256 HEX] [--token-file PATH] [--revision R] [--cpu N] [--memory Q] [--threads N] ...
         [--replicas N | --min N --max N] [--progress-deadline SECONDS] [--request-id ID] [--wait] [--json]
         a new model or resources roll out a new revision; flags not given keep their current values
  scale NAME --replicas N | --min N --max N [--request-id ID] [--wait] [--json]
         no new revision; --replicas 0 stops the deployment, more resumes it
  rollback NAME [--revision N] [--request-id ID] [--wait] [--json]
         roll out an earlier revision's model and resources (default: the previous one)
  cancel TASK_ID [--json]      stop a PENDING or RUNNING task; the serving revision keeps serving
  get NAME [--json]            list [--state S]... [--label-selector k=v] [--json]
  status NAME [--json]         task TASK_ID [--json]
  revisions NAME [--json]      tasks NAME [--status S,...] [--page-size N] [--json]
  watch NAME [--after N]       delete NAME [--wait] [--json]
  catalog [--json]             accelerator types and how many are free
  sample-model PATH            write a small ONNX model (y = x·W + b, ids + 1) to try deploys with
  --wait follows the task's events and exits 0 when it completed, 1 with its failure otherwise`;
