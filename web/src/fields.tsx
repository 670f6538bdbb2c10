// Form fields over one record of strings, and what they turn into.
import type { ComponentChildren } from "preact";

export type Values = Record<string, string>;

export interface FieldProps {
  name: string;
  label: string;
  values: Values;
  set: (name: string, value: string) => void;
  type?: string;
  placeholder?: string;
  required?: boolean;
  hint?: string;
}

export function Field({ name, label, values, set, type = "text", placeholder, required, hint }: FieldProps) {
  return (
    <label>
      {label}
      <input
        name={name}
        type={type}
        placeholder={placeholder}
        required={required}
        autocomplete="off"
        value={values[name] ?? ""}
        onInput={(e) => set(name, e.currentTarget.value)}
        {...(type === "number" ? { min: 0, step: name === "cpu" ? "any" : 1 } : {})}
      />
      {hint && <small>{hint}</small>}
    </label>
  );
}

export function Select({
  name,
  label,
  values,
  set,
  children,
}: {
  name: string;
  label: string;
  values: Values;
  set: (name: string, value: string) => void;
  children: ComponentChildren;
}) {
  return (
    <label>
      {label}
      <select name={name} value={values[name] ?? ""} onChange={(e) => set(name, e.currentTarget.value)}>
        {children}
      </select>
    </label>
  );
}

export const num = (v: string | undefined) => (v === undefined || v.trim() === "" ? 0 : Number(v));

/** A path typed where a URI belongs is a local file. */
export const weightsUri = (v: string) => (v.startsWith("/") ? `file://${v}` : v.trim());

/** "team=a, tier=gold" → { team: "a", tier: "gold" }. */
export function labelsOf(v: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (v ?? "").split(/[,\n]/)) {
    const [k, ...rest] = part.split("=");
    if (k?.trim()) out[k.trim()] = rest.join("=").trim();
  }
  return out;
}

/** A new idempotency key per filled-in form: a double submit creates one deployment. */
export const newRequestId = () => crypto.randomUUID();
