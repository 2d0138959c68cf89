// The fleet and route-forwarding keys (issue 11) against what a typo or a hostile config would
// hold: malformed, huge, empty, duplicated and contradictory values are refused, each naming its
// key path; the issue's example is accepted as written, with Envoy's defaults.
import t from 'tap';
import { parse, stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load-config.js';
import { configIssuesOf } from '../helpers/config-issues.js';

const BASE = {
  listen: { host: '127.0.0.1', port: 8443 },
  tls: { cert: './gateway.crt', key: './gateway.key', clientCA: './ca.pem' },
  upstreams: {
    orders: {
      targets: ['https://10.0.0.11:9443', 'https://10.0.0.12:9443'],
      tls: { cert: './c.crt', key: './c.key', ca: './ca.pem', servername: 'orders.internal' },
    },
  },
  routes: [{ name: 'orders', match: { pathPrefix: '/orders' }, upstream: 'orders', allow: [{ spiffe: 'spiffe://example.org/ns/*/sa/billing' }] }],
};

type Obj = Record<string, unknown>;

function withPatch(patch: (c: Obj) => void): string {
  const c = structuredClone(BASE) as unknown as Obj;
  patch(c);
  return stringify(c);
}
const upstream = (c: Obj) => (c['upstreams'] as Obj)['orders'] as Obj;
const route = (c: Obj) => (c['routes'] as Obj[])[0]!;


t.test("the issue's example is accepted, with defaults", async (t) => {
  const text = `
listen: { host: 127.0.0.1, port: 8443 }
tls: { cert: ./g.crt, key: ./g.key, clientCA: ./ca.pem }
upstreams:
  orders:
    targets: [https://10.0.0.11:9443, https://10.0.0.12:9443]
    balance: least-request
    weights: { https://10.0.0.11:9443: 3 }
    healthCheck: { path: /healthz, interval: 5s, timeout: 2s, healthyThreshold: 2, unhealthyThreshold: 3, expectStatus: [200] }
    outlierDetection: { consecutiveFailures: 5, baseEjection: 30s, maxEjectionPercent: 50 }
    retries: { attempts: 2, on: [connect-failure, reset, refused-stream, 502, 503], backoff: 25ms, budget: 20% }
    limits: { maxConnections: 256, maxPending: 1024, maxRequests: 1024 }
    tls: { cert: ./c.crt, key: ./c.key, ca: ./ca.pem, servername: orders.internal }
  discovered:
    discovery: { dns: orders-headless.shop.svc.cluster.local, port: 9443, refresh: 10s }
    tls: { cert: ./c.crt, key: ./c.key, ca: ./ca.pem, servername: orders.internal }
routes:
  - name: orders
    match: { pathPrefix: /orders }
    upstream: orders
    rewrite: { prefix: /v1/orders }
    host: upstream
    timeouts: { response: 10s }
    rateLimit: { key: spiffe, rate: 100/s, burst: 200 }
    allow: [{ spiffe: spiffe://example.org/ns/*/sa/billing }]
`;
  t.strictSame(configIssuesOf(text), []);
  const config = parseConfigText(text, '/etc/gw/gateway.yaml');
  const u = config.upstreams['orders']!;
  t.strictSame(u.retries.on, ['connect-failure', 'reset', 'refused-stream', '502', '503'], 'status reasons written as numbers become names');
  t.equal(u.retries.budget, 20);
  t.equal(u.retries.backoff, 25);
  t.equal(config.routes[0]!.rateLimit!.rate, 100, 'per second');
  const d = config.upstreams['discovered']!;
  t.match(d, { balance: 'round-robin', limits: { maxConnections: 256, maxPending: 1024, maxRequests: 1024 }, retries: { attempts: 1, on: ['connect-failure', 'reset', 'refused-stream'], backoff: 25, budget: 20 }, outlierDetection: { enabled: true, consecutiveFailures: 5, baseEjection: 30_000, maxEjectionPercent: 50 } });
  t.equal(d.discovery!.refresh, 10_000);
  t.equal(d.healthCheck, undefined, 'no active checks unless configured');
});

t.test('`connections` stays valid as the older spelling of limits.maxConnections', async (t) => {
  const config = parseConfigText(withPatch((c) => (upstream(c)['connections'] = 64)), '/x.yaml');
  t.equal(config.upstreams['orders']!.limits.maxConnections, 64);
});

const REFUSED: Array<[string, (c: Obj) => void, string, RegExp]> = [
  ['none of url, targets, discovery', (c) => delete upstream(c)['targets'], 'upstreams.orders', /set one of "url", "targets" or "discovery"/],
  ['url and targets', (c) => (upstream(c)['url'] = 'https://10.0.0.1:1'), 'upstreams.orders.targets', /only one of/],
  ['targets and discovery', (c) => (upstream(c)['discovery'] = { dns: 'a.b', port: 1 }), 'upstreams.orders.discovery', /only one of/],
  ['empty targets', (c) => (upstream(c)['targets'] = []), 'upstreams.orders.targets', /.+/],
  ['duplicate targets', (c) => (upstream(c)['targets'] = ['https://10.0.0.1:9443', 'https://10.0.0.1:9443/']), 'upstreams.orders.targets[1]', /duplicate target/],
  ['an http:// target', (c) => (upstream(c)['targets'] = ['http://10.0.0.1:9443']), 'upstreams.orders.targets[0]', /https:\/\/ origin/],
  ['a target with a path', (c) => (upstream(c)['targets'] = ['https://10.0.0.1:9443/api']), 'upstreams.orders.targets[0]', /https:\/\/ origin/],
  ['a target with credentials', (c) => (upstream(c)['targets'] = ['https://u:p@10.0.0.1:9443']), 'upstreams.orders.targets[0]', /https:\/\/ origin/],
  ['too many targets', (c) => (upstream(c)['targets'] = Array.from({ length: 1025 }, (_, i) => `https://10.0.${i >> 8}.${i & 255}:9443`)), 'upstreams.orders.targets', /.+/],
  ['a target that is not a string', (c) => (upstream(c)['targets'] = [42]), 'upstreams.orders.targets[0]', /.+/],
  ['weights for an unknown target', (c) => (upstream(c)['weights'] = { 'https://10.9.9.9:1': 2 }), 'upstreams.orders.weights["https://10.9.9.9:1"]', /not one of the targets/],
  ['a weight of zero', (c) => (upstream(c)['weights'] = { 'https://10.0.0.11:9443': 0 }), 'upstreams.orders.weights["https://10.0.0.11:9443"]', /.+/],
  ['a fractional weight', (c) => (upstream(c)['weights'] = { 'https://10.0.0.11:9443': 1.5 }), 'upstreams.orders.weights["https://10.0.0.11:9443"]', /.+/],
  ['weights with discovery', (c) => {
    delete upstream(c)['targets'];
    upstream(c)['discovery'] = { dns: 'orders.svc', port: 9443 };
    upstream(c)['weights'] = { 'https://10.0.0.11:9443': 2 };
  }, 'upstreams.orders.weights', /discovered targets all weigh 1/],
  ['an unknown balance', (c) => (upstream(c)['balance'] = 'least-conn'), 'upstreams.orders.balance', /.+/],
  ['a discovery name with a scheme', (c) => {
    delete upstream(c)['targets'];
    upstream(c)['discovery'] = { dns: 'https://orders.svc', port: 9443 };
  }, 'upstreams.orders.discovery.dns', /DNS name/],
  ['a discovery name too long', (c) => {
    delete upstream(c)['targets'];
    upstream(c)['discovery'] = { dns: `${'a'.repeat(63)}.`.repeat(5), port: 9443 };
  }, 'upstreams.orders.discovery.dns', /DNS name/],
  ['a discovery port out of range', (c) => {
    delete upstream(c)['targets'];
    upstream(c)['discovery'] = { dns: 'orders.svc', port: 70000 };
  }, 'upstreams.orders.discovery.port', /.+/],
  ['a discovery refresh too short', (c) => {
    delete upstream(c)['targets'];
    upstream(c)['discovery'] = { dns: 'orders.svc', port: 9443, refresh: '10ms' };
  }, 'upstreams.orders.discovery.refresh', /shorter than the minimum/],
  ['an unknown discovery key', (c) => {
    delete upstream(c)['targets'];
    upstream(c)['discovery'] = { dns: 'orders.svc', port: 9443, srv: true };
  }, 'upstreams.orders.discovery', /srv/],
  ['a health check path without a slash', (c) => (upstream(c)['healthCheck'] = { path: 'healthz' }), 'upstreams.orders.healthCheck.path', /origin-form path/],
  ['a health check path with a space', (c) => (upstream(c)['healthCheck'] = { path: '/health z' }), 'upstreams.orders.healthCheck.path', /origin-form path/],
  ['a health check path with CRLF', (c) => (upstream(c)['healthCheck'] = { path: '/h\r\nX-Evil: 1' }), 'upstreams.orders.healthCheck.path', /origin-form path/],
  ['a health check timeout not below its interval', (c) => (upstream(c)['healthCheck'] = { path: '/h', interval: '1s', timeout: '1s' }), 'upstreams.orders.healthCheck', /timeout must be shorter than interval/],
  ['an empty expectStatus', (c) => (upstream(c)['healthCheck'] = { path: '/h', expectStatus: [] }), 'upstreams.orders.healthCheck.expectStatus', /.+/],
  ['an expectStatus that is no status', (c) => (upstream(c)['healthCheck'] = { path: '/h', expectStatus: [99] }), 'upstreams.orders.healthCheck.expectStatus[0]', /.+/],
  ['a zero threshold', (c) => (upstream(c)['healthCheck'] = { path: '/h', unhealthyThreshold: 0 }), 'upstreams.orders.healthCheck.unhealthyThreshold', /.+/],
  ['a maxEjectionPercent above 100', (c) => (upstream(c)['outlierDetection'] = { maxEjectionPercent: 101 }), 'upstreams.orders.outlierDetection.maxEjectionPercent', /.+/],
  ['a zero consecutiveFailures', (c) => (upstream(c)['outlierDetection'] = { consecutiveFailures: 0 }), 'upstreams.orders.outlierDetection.consecutiveFailures', /.+/],
  ['an unknown retry reason', (c) => (upstream(c)['retries'] = { on: ['5xx'] }), 'upstreams.orders.retries.on[0]', /.+/],
  ['a retry on 500', (c) => (upstream(c)['retries'] = { on: [500] }), 'upstreams.orders.retries.on[0]', /.+/],
  ['too many attempts', (c) => (upstream(c)['retries'] = { attempts: 11 }), 'upstreams.orders.retries.attempts', /.+/],
  ['negative attempts', (c) => (upstream(c)['retries'] = { attempts: -1 }), 'upstreams.orders.retries.attempts', /.+/],
  ['a budget above 100%', (c) => (upstream(c)['retries'] = { budget: '120%' }), 'upstreams.orders.retries.budget', /between 0% and 100%/],
  ['a budget without %', (c) => (upstream(c)['retries'] = { budget: 'twenty' }), 'upstreams.orders.retries.budget', /.+/],
  ['a backoff beyond 10s', (c) => (upstream(c)['retries'] = { backoff: '1m' }), 'upstreams.orders.retries.backoff', /longer than the maximum/],
  ['connections and limits.maxConnections together', (c) => {
    upstream(c)['connections'] = 10;
    upstream(c)['limits'] = { maxConnections: 10 };
  }, 'upstreams.orders.connections', /not both/],
  ['a zero maxRequests', (c) => (upstream(c)['limits'] = { maxRequests: 0 }), 'upstreams.orders.limits.maxRequests', /.+/],
  ['a negative maxPending', (c) => (upstream(c)['limits'] = { maxPending: -1 }), 'upstreams.orders.limits.maxPending', /.+/],
  ['an unknown limits key', (c) => (upstream(c)['limits'] = { maxRetries: 3 }), 'upstreams.orders.limits', /maxRetries/],
  ['a rewrite with ..', (c) => (route(c)['rewrite'] = { prefix: '/v1/../admin' }), 'routes[0].rewrite.prefix', /"\.\." segment/],
  ['a rewrite with //', (c) => (route(c)['rewrite'] = { prefix: '/v1//orders' }), 'routes[0].rewrite.prefix', /"\/\/"/],
  ['a rewrite with an escape', (c) => (route(c)['rewrite'] = { prefix: '/v1/%2e%2e' }), 'routes[0].rewrite.prefix', /"%"/],
  ['a rewrite with a query', (c) => (route(c)['rewrite'] = { prefix: '/v1?admin=1' }), 'routes[0].rewrite.prefix', /"\?"/],
  ['a rewrite with ;', (c) => (route(c)['rewrite'] = { prefix: '/v1;jsessionid=x' }), 'routes[0].rewrite.prefix', /";"/],
  ['a relative rewrite', (c) => (route(c)['rewrite'] = { prefix: 'v1/orders' }), 'routes[0].rewrite.prefix', /start with "\/"/],
  ['an empty rewrite', (c) => (route(c)['rewrite'] = { prefix: '' }), 'routes[0].rewrite.prefix', /start with "\/"/],
  ['a huge rewrite', (c) => (route(c)['rewrite'] = { prefix: `/${'a'.repeat(2000)}` }), 'routes[0].rewrite.prefix', /at most 1024/],
  ['a rewrite with CR LF', (c) => (route(c)['rewrite'] = { prefix: '/v1\r\nX-Evil: 1' }), 'routes[0].rewrite.prefix', /control character/],
  ['a rewrite with a regex key', (c) => (route(c)['rewrite'] = { regex: '.*' }), 'routes[0].rewrite', /.+/],
  ['an unknown host mode', (c) => (route(c)['host'] = 'client'), 'routes[0].host', /.+/],
  ['a zero rate', (c) => (route(c)['rateLimit'] = { key: 'spiffe', rate: '0/s', burst: 1 }), 'routes[0].rateLimit.rate', /not a rate/],
  ['a rate per day', (c) => (route(c)['rateLimit'] = { key: 'spiffe', rate: '100/d', burst: 1 }), 'routes[0].rateLimit.rate', /not a rate/],
  ['a rate in exponent form', (c) => (route(c)['rateLimit'] = { key: 'spiffe', rate: '1e3/s', burst: 1 }), 'routes[0].rateLimit.rate', /not a rate/],
  ['a negative rate', (c) => (route(c)['rateLimit'] = { key: 'spiffe', rate: '-5/s', burst: 1 }), 'routes[0].rateLimit.rate', /not a rate/],
  ['a rate beyond 1e9', (c) => (route(c)['rateLimit'] = { key: 'spiffe', rate: '99999999999/s', burst: 1 }), 'routes[0].rateLimit.rate', /not a rate/],
  ['a rate without burst', (c) => (route(c)['rateLimit'] = { key: 'spiffe', rate: '10/s' }), 'routes[0].rateLimit.burst', /.+/],
  ['a zero burst', (c) => (route(c)['rateLimit'] = { key: 'spiffe', rate: '10/s', burst: 0 }), 'routes[0].rateLimit.burst', /.+/],
  ['an unknown rate key', (c) => (route(c)['rateLimit'] = { key: 'ip', rate: '10/s', burst: 1 }), 'routes[0].rateLimit.key', /.+/],
  ['a route timeout that is no duration', (c) => (route(c)['timeouts'] = { response: 'soon' }), 'routes[0].timeouts.response', /not a duration/],
  ['an unknown route timeout', (c) => (route(c)['timeouts'] = { connect: '1s' }), 'routes[0].timeouts', /connect/],
];

for (const [what, patch, key, message] of REFUSED) {
  t.test(`refused: ${what}`, async (t) => {
    const issues = configIssuesOf(withPatch(patch));
    t.ok(issues.length > 0, 'refused');
    const hit = issues.find((i) => i.path === key);
    t.ok(hit, `an issue names ${key} (got ${issues.map((i) => `${i.path}: ${i.message}`).join(' | ')})`);
    if (hit) t.match(hit.message, message);
  });
}

t.test('duplicated keys in the YAML are refused, not merged', async (t) => {
  const text = stringify(BASE).replace('  orders:\n    targets:', '  orders:\n    balance: random\n    balance: least-request\n    targets:');
  t.not(text, stringify(BASE), 'the duplicate is in the text');
  t.throws(() => parseConfigText(text, '/x.yaml'));
  t.ok(parse(stringify(BASE)));
});
