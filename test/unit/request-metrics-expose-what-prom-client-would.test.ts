// The per-request metrics (mtls_gateway_requests_total and mtls_gateway_request_duration_seconds)
// are kept outside prom-client on the request path and handed to it when read. What a scrape shows,
// and what the cluster aggregator sums across workers, must be exactly what prom-client's own
// Counter and Histogram would show for the same requests.
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client';
import t from 'tap';
import { DURATION_BUCKETS, GatewayMetrics, type RequestDecision } from '../../src/telemetry/metrics.js';

type Req = [route: string, decision: RequestDecision, status: number, seconds: number];

/** prom-client's own metrics, fed the same requests. */
function reference(reqs: readonly Req[]): Registry {
  const registry = new Registry();
  const count = new Counter({
    name: 'mtls_gateway_requests_total',
    help: 'Requests answered, by route ("" when none matched), decision (allow, deny, would-deny, no-route, refused) and HTTP status.',
    labelNames: ['route', 'decision', 'status'],
    registers: [registry],
  });
  const duration = new Histogram({
    name: 'mtls_gateway_request_duration_seconds',
    help: 'Time from the request head to the end of the answer, by route ("" when none matched).',
    labelNames: ['route'],
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  for (const [route, decision, status, seconds] of reqs) {
    count.inc({ route, decision, status: String(status) });
    duration.observe({ route }, seconds);
  }
  return registry;
}

/** The text blocks of the two request metrics, in registry order. */
function requestBlocks(text: string): string {
  return text
    .split('\n\n')
    .filter((b) => /^# HELP mtls_gateway_(requests_total|request_duration_seconds) /.test(b))
    .map((b) => b.trimEnd())
    .join('\n\n');
}

// Every bucket bound exactly, just above and below it, zero, past the last bound, and routes whose
// names need escaping in the exposition.
const ROUTES = ['orders', '', 'we"ird\\route\nname'];
const DECISIONS: RequestDecision[] = ['allow', 'deny', 'would-deny', 'no-route', 'refused'];
function requests(n: number, seed: number): Req[] {
  const out: Req[] = [];
  const values = [0, ...DURATION_BUCKETS.flatMap((b) => [b, b * 0.999, b * 1.001]), 31, 1e9];
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    out.push([ROUTES[x % ROUTES.length]!, DECISIONS[(x >> 3) % DECISIONS.length]!, [200, 403, 404, 502][(x >> 7) % 4]!, values[(x >> 11) % values.length]!]);
  }
  return out;
}

t.test('a scrape shows what prom-client would show for the same requests', async (t) => {
  const reqs = requests(2_000, 7);
  const m = new GatewayMetrics();
  for (const r of reqs) m.request(...r);
  const want = requestBlocks(await reference(reqs).metrics());
  t.ok(want.includes('mtls_gateway_request_duration_seconds_bucket{le="0.001",route="orders"}'), 'the reference has the histogram');
  t.equal(requestBlocks(await m.text()), want);
});

t.test('counts are added once: a second scrape, and requests between scrapes', async (t) => {
  const first = requests(500, 1);
  const second = requests(300, 2);
  const m = new GatewayMetrics();
  for (const r of first) m.request(...r);
  t.equal(requestBlocks(await m.text()), requestBlocks(await reference(first).metrics()));
  t.equal(requestBlocks(await m.text()), requestBlocks(await reference(first).metrics()), 'a scrape does not count the same requests twice');
  for (const r of second) m.request(...r);
  t.equal(requestBlocks(await m.text()), requestBlocks(await reference([...first, ...second]).metrics()));
});

t.test('before any request neither metric has a series, as with prom-client', async (t) => {
  t.equal(requestBlocks(await new GatewayMetrics().text()), requestBlocks(await reference([]).metrics()));
});

t.test('workers aggregate as prom-client metrics do', async (t) => {
  const a = requests(400, 3);
  const b = requests(600, 4);
  const ma = new GatewayMetrics();
  const mb = new GatewayMetrics();
  for (const r of a) ma.request(...r);
  for (const r of b) mb.request(...r);
  const mine = AggregatorRegistry.aggregate([await ma.registry.getMetricsAsJSON(), await mb.registry.getMetricsAsJSON()]);
  const theirs = AggregatorRegistry.aggregate([await reference(a).getMetricsAsJSON(), await reference(b).getMetricsAsJSON()]);
  t.equal(requestBlocks(await mine.metrics()), requestBlocks(await theirs.metrics()));
  // Against one process fed every request, only the floating-point _sum may differ (two partial
  // sums added, instead of one running sum), for prom-client's metrics as for these.
  const noSums = (text: string) => requestBlocks(text).split('\n').filter((l) => !l.includes('_sum{')).join('\n');
  t.equal(noSums(await mine.metrics()), noSums(await reference([...a, ...b]).metrics()), 'the counts of both workers add up to what one process would show');
});
