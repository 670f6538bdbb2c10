import { showError } from "./errors.js";

/** A refused call: code, message, ErrorInfo reason and metadata, field violations. */
export function ErrorBox({ error }: { error: unknown }) {
  if (error === undefined) return null;
  const e = showError(error);
  return (
    <div class="error" role="alert">
      <div>
        {e.code && <span class="code">{e.code}</span>} {e.message}
      </div>
      {e.reason && (
        <div class="reason">
          reason: <b>{e.reason}</b>
          {e.metadata.map(([k, v]) => (
            <span class="meta" key={k}>
              {" "}
              {k}={v}
            </span>
          ))}
        </div>
      )}
      {e.violations.map((v) => (
        <div class="violation" key={v}>
          {v}
        </div>
      ))}
      {e.requestId && <div class="request-id">request id {e.requestId}</div>}
    </div>
  );
}
