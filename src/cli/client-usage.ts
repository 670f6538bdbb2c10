// The client commands' usage text, apart so that `modeldeploy --help` and the
// server commands do not load the client (and its ONNX sample-model code).
export const clientUsage = `Client commands (MODELDEPLOY_URL, default http://127.0.0.1:8080; MODELDEPLOY_API_KEY):
  deploy --model NAME --uri URI [--sha256 HEX] [--suffix S] [--replicas N | --min N --max N]
         [--threads N] [--max-batch-size N] [--cpu N] [--memory Q] [--label k=v]... [--request-id ID] [--wait] [--json]
  get NAME [--json]            list [--state S]... [--label-selector k=v] [--json]
  status NAME [--json]         task TASK_ID [--json]
  watch NAME [--after N]       delete NAME [--wait] [--json]
  sample-model PATH            write a small ONNX model (y = x·W + b, ids + 1) to try deploys with`;
