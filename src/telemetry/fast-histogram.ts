// A labelled Prometheus histogram for hot paths: each label set is bound once
// (child()) and an observation is a bucket search and three additions, with
// nothing allocated (prom-client's own observe builds a labels object and a
// hash string per call). Registered in a prom-client Registry, which renders it.
import type { Metric, MetricValueWithName, Registry } from "prom-client";

export interface HistogramChild {
  observe(value: number): void;
}

class Child implements HistogramChild {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    private readonly bounds: readonly number[],
    readonly labels: Readonly<Record<string, string>>,
  ) {
    this.counts = new Float64Array(bounds.length);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    if (i < bounds.length) this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

export class FastHistogram {
  readonly type = "histogram";
  private readonly children = new Map<string, Child>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    private readonly bounds: readonly number[],
    registry: Registry,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series of these label values (in labelNames' order); keep it, observe on it. */
  child(...values: string[]): HistogramChild {
    const key = values.join("\u0000");
    let c = this.children.get(key);
    if (c === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ""));
      c = new Child(this.bounds, labels);
      this.children.set(key, c);
    }
    return c;
  }

  /** Drops the series whose labels `match` (a released deployment's, say). */
  remove(match: (labels: Readonly<Record<string, string>>) => boolean): void {
    for (const [key, c] of this.children) if (match(c.labels)) this.children.delete(key);
  }

  /** Read by the registry on a scrape. */
  get(): Promise<{ name: string; help: string; type: string; values: MetricValueWithName<string>[]; aggregator: string }> {
    const values: MetricValueWithName<string>[] = [];
    for (const c of this.children.values()) {
      let cumulative = 0;
      this.bounds.forEach((le, i) => {
        cumulative += c.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le, ...c.labels }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: "+Inf", ...c.labels }, value: c.count });
      values.push({ metricName: `${this.name}_sum`, labels: c.labels, value: c.sum });
      values.push({ metricName: `${this.name}_count`, labels: c.labels, value: c.count });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: "histogram", values, aggregator: "sum" });
  }
}
