// Latency histogram in microseconds: exact below 1 ms, then 128 sub-buckets per power of two (under
// 0.8% error) up to about 18 minutes. Counts live in a plain array so workers can send them as JSON.
const LINEAR = 1024;
const SUB_BITS = 7;
const SUB = 1 << SUB_BITS;
export const BUCKETS = LINEAR + (31 - 10) * SUB;

export function bucketOf(us) {
  const v = us < 0 ? 0 : Math.round(us);
  if (v < LINEAR) return v;
  const e = Math.min(30, 31 - Math.clz32(v));
  return LINEAR + (e - 10) * SUB + ((v >>> (e - SUB_BITS)) & (SUB - 1));
}

export function valueOf(idx) {
  if (idx < LINEAR) return idx;
  const k = idx - LINEAR;
  const e = 10 + Math.floor(k / SUB);
  const width = 2 ** (e - SUB_BITS);
  return (SUB + (k % SUB)) * width + width / 2;
}

export class Histogram {
  constructor() {
    this.counts = new Array(BUCKETS).fill(0);
    this.total = 0;
    this.max = 0;
  }

  record(us) {
    this.counts[bucketOf(us)]++;
    this.total++;
    if (us > this.max) this.max = us;
  }

  merge(other) {
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += other.counts[i];
    this.total += other.total;
    if (other.max > this.max) this.max = other.max;
  }

  percentile(p) {
    if (this.total === 0) return null;
    const want = Math.max(1, Math.ceil((p / 100) * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= want) return valueOf(i);
    }
    return this.max;
  }

  toJSON() {
    return { counts: this.counts, total: this.total, max: this.max };
  }

  static from(json) {
    const h = new Histogram();
    h.counts = json.counts;
    h.total = json.total;
    h.max = json.max;
    return h;
  }
}
