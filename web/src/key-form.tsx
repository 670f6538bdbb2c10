import { useState } from "preact/hooks";
import { ErrorBox } from "./error-box.js";

/** Asks for the API key; the page keeps it in this tab's session only. */
export function KeyForm({ onKey, error }: { onKey: (key: string) => void; error: unknown }) {
  const [key, setKey] = useState("");
  return (
    <form
      class="card narrow"
      onSubmit={(e) => {
        e.preventDefault();
        if (key.trim()) onKey(key.trim());
      }}
    >
      <h2>Sign in</h2>
      <p class="hint">
        An API key of your workspace (<code>npx modeldeploy keys create</code>, or <code>.modeldeploy/bootstrap-key</code>). It is kept in this browser tab's
        session only.
      </p>
      <label>
        API key
        <input name="apiKey" type="password" autocomplete="off" required value={key} onInput={(e) => setKey(e.currentTarget.value)} />
      </label>
      <ErrorBox error={error} />
      <button type="submit">Continue</button>
    </form>
  );
}
