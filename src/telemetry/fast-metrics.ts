// Labelled Prometheus metrics for hot paths: each label set is bound once
// (child()) and kept by the caller, so that recording is a few additions with
// nothing allocated (prom-client builds a labels object and a hash string per
// observation). They need no prom-client until a scrape renders them
// (metrics.ts), so a process loads it only when scraped.
import type { MetricSnapshot, MetricsRegistry, Sample } from "./metrics.js";

type Labels = Readonly<Record<string, string>>;

abstract class Labelled<C extends { labels: Labels }> {
  protected readonly children = new Map<string, C>();

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
    registry: MetricsRegistry,
  ) {
    registry.register(this);
  }

  protected abstract make(labels: Labels): C;

  /** The series of these label values (in labelNames' order); keep it and record on it. */
  child(...values: string[]): C {
    const key = values.join("\u0000");
    let c = this.children.get(key);
    if (c === undefined) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((n, i) => (labels[n] = values[i] ?? ""));
      c = this.make(labels);
      this.children.set(key, c);
    }
    return c;
  }

  /** Drops the series whose labels `match` (a released deployment's, say). */
  remove(match: (labels: Labels) => boolean): void {
    for (const [key, c] of this.children) if (match(c.labels)) this.children.delete(key);
  }

  abstract get(): Promise<MetricSnapshot>;
}

export interface HistogramChild {
  observe(value: number): void;
}

class HistogramCell implements HistogramChild {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(
    private readonly bounds: readonly number[],
    readonly labels: Labels,
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

export class FastHistogram extends Labelled<HistogramCell> {
  readonly type = "histogram";

  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly bounds: readonly number[],
    registry: MetricsRegistry,
  ) {
    super(name, help, labelNames, registry);
  }

  protected make(labels: Labels): HistogramCell {
    return new HistogramCell(this.bounds, labels);
  }

  get(): Promise<MetricSnapshot> {
    const values: Sample[] = [];
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

/** One series of a counter or gauge. */
export class ValueCell {
  value = 0;

  constructor(readonly labels: Labels) {}

  inc(by = 1): void {
    this.value += by;
  }

  dec(by = 1): void {
    this.value -= by;
  }

  set(value: number): void {
    this.value = value;
  }
}

class ValueMetric extends Labelled<ValueCell> {
  constructor(
    readonly type: "counter" | "gauge",
    name: string,
    help: string,
    labelNames: readonly string[],
    registry: MetricsRegistry,
    /** Runs before each scrape reads the values (a gauge read from elsewhere). */
    private readonly collect?: (metric: ValueMetric) => Promise<void> | void,
  ) {
    super(name, help, labelNames, registry);
  }

  protected make(labels: Labels): ValueCell {
    return new ValueCell(labels);
  }

  async get(): Promise<MetricSnapshot> {
    await this.collect?.(this);
    const values = [...this.children.values()].map((c) => ({ labels: c.labels, value: c.value }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: "sum" };
  }
}

export class FastCounter extends ValueMetric {
  constructor(name: string, help: string, labelNames: readonly string[], registry: MetricsRegistry) {
    super("counter", name, help, labelNames, registry);
  }
}

export class FastGauge extends ValueMetric {
  constructor(name: string, help: string, labelNames: readonly string[], registry: MetricsRegistry, collect?: (gauge: FastGauge) => Promise<void> | void) {
    super("gauge", name, help, labelNames, registry, collect as ((metric: ValueMetric) => Promise<void> | void) | undefined);
  }
}
