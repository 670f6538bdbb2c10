// Deployment names are RFC 1123 labels built as "<model slug>-<suffix>".

export const MAX_NAME_LENGTH = 63;
const LABEL = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

export function isDnsLabel(value: string): boolean {
  return value.length > 0 && value.length <= MAX_NAME_LENGTH && LABEL.test(value);
}

/** "google/vit-base-patch16-224" → "vit-base-patch16-224". */
export function modelSlug(modelName: string): string {
  const last = modelName.split("/").filter(Boolean).pop() ?? "";
  return last
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/-+/g, "-")
    .replace(/^-+|-+$/g, "");
}

/** The slug cut so that "<slug>-<suffix>" fits in a label. */
export function deploymentName(modelName: string, suffix: string): string {
  const room = MAX_NAME_LENGTH - suffix.length - 1;
  const slug = modelSlug(modelName).slice(0, Math.max(room, 0)).replace(/-+$/g, "");
  return slug ? `${slug}-${suffix}` : suffix;
}

/** Workspaces: lowercase label too (they appear in URLs and subjects). */
export function isWorkspaceName(value: string): boolean {
  return isDnsLabel(value);
}
