// Medians and percentiles of samples.

/** The p-th percentile (nearest rank) of xs; NaN for no samples. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** figure / baseline; NaN when either is missing or the baseline is 0 (∞ for a figure that is ∞). */
export function ratio(figure: number, baseline: number): number {
  if (Number.isNaN(figure) || !Number.isFinite(baseline) || baseline <= 0) return NaN;
  return figure / baseline;
}
