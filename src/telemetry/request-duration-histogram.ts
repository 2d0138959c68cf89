/**
 * Telemetry: mtls_gateway_request_duration_seconds, the one histogram every request updates. It is
 * a prom-client metric in all but its storage: registered in the same registry, exposed in the
 * same text format and aggregated across workers the same way (its `get()` returns prom-client's
 * shape, `aggregator: 'sum'`). What differs is the cost per request: prom-client's labelled
 * `observe` hashes the label set on every call (about 1.2 µs with the request counter on Node 24),
 * while a route's series here is found once and kept, so an observation is a bucket search and
 * three additions.
 */

/** One route's series: counts per bucket (not cumulative), sum and count. */
export interface DurationSeries {
  readonly route: string;
  readonly counts: number[];
  sum: number;
  count: number;
}

interface ExportedValue {
  readonly labels: Record<string, string | number>;
  readonly value: number;
  readonly metricName: string;
}

export class RequestDurationHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames: readonly string[] = ['route'];
  readonly #series = new Map<string, DurationSeries>();

  /** `buckets`: upper bounds in seconds, ascending. */
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: readonly number[],
  ) {
    for (let i = 1; i < buckets.length; i++) if (!(buckets[i]! > buckets[i - 1]!)) throw new Error(`${name}: buckets must ascend`);
  }

  /** The series of `route`, created (at zero) on first use; keep it to observe without a lookup. */
  series(route: string): DurationSeries {
    let s = this.#series.get(route);
    if (s === undefined) {
      s = { route, counts: new Array<number>(this.buckets.length).fill(0), sum: 0, count: 0 };
      this.#series.set(route, s);
    }
    return s;
  }

  observe(series: DurationSeries, seconds: number): void {
    const bounds = this.buckets;
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= bounds[i]!) {
        series.counts[i]!++;
        break;
      }
    }
    series.sum += seconds;
    series.count++;
  }

  /** prom-client's Metric#get(): what the registry formats and the cluster aggregator sums. */
  async get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: ExportedValue[] }> {
    const values: ExportedValue[] = [];
    const bucket = `${this.name}_bucket`;
    for (const s of this.#series.values()) {
      let acc = 0;
      for (let i = 0; i < this.buckets.length; i++) {
        acc += s.counts[i]!;
        values.push({ labels: { le: this.buckets[i]!, route: s.route }, value: acc, metricName: bucket });
      }
      values.push({ labels: { le: '+Inf', route: s.route }, value: s.count, metricName: bucket });
      values.push({ labels: { route: s.route }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { route: s.route }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const s of this.#series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
