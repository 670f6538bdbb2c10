// Figure and baseline measured in alternation (figure, baseline, figure,
// baseline, …), so that a machine that gets busier or quieter during the
// run moves both alike; each is then summarized by its median.
import { median } from "./stats.js";

export interface Paired<F, B> {
  figure: F[];
  baseline: B[];
}

export async function alternate<F, B>(pairs: number, figure: (i: number) => Promise<F>, baseline: (i: number) => Promise<B>): Promise<Paired<F, B>> {
  const out: Paired<F, B> = { figure: [], baseline: [] };
  for (let i = 0; i < pairs; i++) {
    out.figure.push(await figure(i));
    out.baseline.push(await baseline(i));
  }
  return out;
}

/** The median of one number taken from each sample. */
export function medianOf<T>(samples: readonly T[], pick: (s: T) => number): number {
  return median(samples.map(pick));
}
