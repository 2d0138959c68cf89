// listen.http2 and server.http2.* (issue 12) against what a typo or a hostile config would hold:
// strings, numbers, null, lists, objects, zero, negatives, fractions, values past the bounds,
// unknown subkeys and a duplicated key are refused naming the key path; absent means the
// documented defaults (HTTP/2 on, 100 streams, a reset burst of 200 at 50 per second).
import t from 'tap';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load-config.js';
import { configIssuesOf } from '../helpers/config-issues.js';

const BASE = {
  listen: { host: '127.0.0.1', port: 8443 },
  tls: { cert: './gateway.crt', key: './gateway.key', clientCA: './ca.pem' },
  upstreams: { orders: { url: 'https://10.0.0.11:9443', tls: { cert: './c.crt', key: './c.key', ca: './ca.pem', servername: 'orders.internal' } } },
  routes: [{ name: 'orders', match: { pathPrefix: '/orders' }, upstream: 'orders', allow: [{ spiffe: 'spiffe://example.org/ns/*/sa/billing' }] }],
};

function withListenHttp2(value: unknown): string {
  const c = structuredClone(BASE) as unknown as { listen: Record<string, unknown> };
  c.listen['http2'] = value;
  return stringify(c);
}

function withServerHttp2(value: unknown): string {
  return stringify({ ...structuredClone(BASE), server: { http2: value } });
}

t.test('absent: the documented defaults', async (t) => {
  const c = parseConfigText(stringify(BASE), '/etc/gw/gateway.yaml');
  t.equal(c.listen.http2, true);
  t.same(c.server.http2, { maxConcurrentStreams: 100, resetBurst: 200, resetRate: 50 });
  t.equal(parseConfigText(withListenHttp2(false), '/etc/gw/gateway.yaml').listen.http2, false);
  t.same(parseConfigText(withServerHttp2({ resetBurst: 1 }), '/etc/gw/gateway.yaml').server.http2, { maxConcurrentStreams: 100, resetBurst: 1, resetRate: 50 }, 'a partial object keeps the other defaults');
});

t.test('listen.http2: only a boolean', async (t) => {
  for (const bad of ['true', 'yes', 'h2', '', 1, 0, null, [true], { enabled: true }]) {
    const issues = configIssuesOf(withListenHttp2(bad));
    t.ok(issues.some((i) => i.path === 'listen.http2'), `${JSON.stringify(bad)} refused naming listen.http2: ${JSON.stringify(issues).slice(0, 160)}`);
  }
});

t.test('server.http2: bounded integers, no unknown keys', async (t) => {
  for (const key of ['maxConcurrentStreams', 'resetBurst', 'resetRate']) {
    for (const bad of [0, -1, 1.5, 1e9, '100', '', null, [100], { n: 1 }, Number.MAX_SAFE_INTEGER + 2]) {
      const issues = configIssuesOf(withServerHttp2({ [key]: bad }));
      t.ok(issues.some((i) => i.path === `server.http2.${key}`), `${key}: ${JSON.stringify(bad)} refused: ${JSON.stringify(issues).slice(0, 160)}`);
    }
  }
  for (const bad of ['on', 1, null, [], true]) {
    t.ok(configIssuesOf(withServerHttp2(bad)).some((i) => i.path.startsWith('server.http2')), `server.http2: ${JSON.stringify(bad)} refused`);
  }
  const unknown = configIssuesOf(withServerHttp2({ maxConcurrentStream: 10 }));
  t.ok(unknown.some((i) => i.path.startsWith('server.http2')), `a misspelt key is refused, not ignored: ${JSON.stringify(unknown).slice(0, 160)}`);
  const duplicated = stringify(BASE) + 'server:\n  http2:\n    resetBurst: 10\n    resetBurst: 100000\n';
  t.not(configIssuesOf(duplicated).length, 0, 'a duplicated key is refused, not merged');
  t.equal(configIssuesOf(withServerHttp2({ maxConcurrentStreams: 1, resetBurst: 100_000, resetRate: 1 })).length, 0, 'the bounds themselves are accepted');
});
