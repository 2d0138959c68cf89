// routes[].timeouts.idle (WebSocket tunnels, issue 12) against what a typo or a hostile config would
// hold: non-durations, empty, numbers, null, lists, values out of range and a duplicated key are
// refused naming the key path; absent means the documented 5 minutes; the handshake check that
// decides which upgrades are tunnelled is pure and refuses what it does not know.
import t from 'tap';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load-config.js';
import { handshakeProblem } from '../../src/dataplane/websocket-upgrade.js';
import { compileRouteForwarding, DEFAULT_TUNNEL_IDLE_MS } from '../../src/proxy/route-forwarding.js';
import { configIssuesOf } from '../helpers/config-issues.js';

const BASE = {
  listen: { host: '127.0.0.1', port: 8443 },
  tls: { cert: './gateway.crt', key: './gateway.key', clientCA: './ca.pem' },
  upstreams: { orders: { url: 'https://10.0.0.11:9443', tls: { cert: './c.crt', key: './c.key', ca: './ca.pem', servername: 'orders.internal' } } },
  routes: [{ name: 'ws', match: { pathPrefix: '/ws' }, upstream: 'orders', allow: [{ spiffe: 'spiffe://example.org/ns/*/sa/billing' }] }],
};

function withIdle(idle: unknown): string {
  const c = structuredClone(BASE) as unknown as { routes: Record<string, unknown>[] };
  c.routes[0]!['timeouts'] = { idle };
  return stringify(c);
}

const identityHeaders = { xfcc: true, clientCert: false, clientCertChain: false };

t.test('absent: 5 minutes; given: as written', async (t) => {
  const plain = parseConfigText(stringify(BASE), '/etc/gw/gateway.yaml');
  t.equal(compileRouteForwarding(plain.routes[0]!, identityHeaders, undefined).tunnelIdleTimeout, DEFAULT_TUNNEL_IDLE_MS);
  t.equal(DEFAULT_TUNNEL_IDLE_MS, 300_000);
  const set = parseConfigText(withIdle('90s'), '/etc/gw/gateway.yaml');
  t.equal(compileRouteForwarding(set.routes[0]!, identityHeaders, undefined).tunnelIdleTimeout, 90_000);
});

t.test('hostile values are refused naming routes[0].timeouts.idle', async (t) => {
  for (const bad of ['', 'soon', '5', '-1s', '50ms', '25h', '1e9h', 'x'.repeat(10_000), 300, null, ['5m'], { m: 5 }, true]) {
    const issues = configIssuesOf(withIdle(bad));
    t.ok(
      issues.some((i) => /routes(\[0\]|\.0)\.timeouts\.idle/.test(i.path)),
      `${JSON.stringify(bad).slice(0, 40)} refused: ${JSON.stringify(issues).slice(0, 200)}`,
    );
  }
  const duplicated = `${stringify(BASE).replace('upstream: orders', 'upstream: orders\n    timeouts:\n      idle: 5m\n      idle: 1h')}`;
  t.not(configIssuesOf(duplicated).length, 0, 'a duplicated key is refused');
  t.ok(configIssuesOf(withIdle('100ms')).length === 0 && configIssuesOf(withIdle('24h')).length === 0, 'the bounds themselves are accepted');
});

t.test('handshakeProblem: only one well-formed Upgrade: websocket on GET HTTP/1.1 without a body passes', async (t) => {
  const key = ['Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='];
  const req = (rawHeaders: string[], method = 'GET', minor = 1) => ({ method, httpVersionMajor: 1, httpVersionMinor: minor, rawHeaders });
  t.equal(handshakeProblem(req(['Upgrade', 'WebSocket', ...key])), null, 'the token is case-insensitive');
  t.match(handshakeProblem(req(['Upgrade', 'h2c', ...key])), { code: 'GW_ERR_UPGRADE_NOT_SUPPORTED' });
  t.match(handshakeProblem(req(['Upgrade', 'websocket/13', ...key])), { code: 'GW_ERR_UPGRADE_NOT_SUPPORTED' });
  t.match(handshakeProblem(req(['Upgrade', 'websocket', 'upgrade', 'websocket', ...key])), { code: 'GW_ERR_UPGRADE_INVALID', reason: 'upgrade-ambiguous' });
  t.match(handshakeProblem(req(['Upgrade', ',', ...key])), { code: 'GW_ERR_UPGRADE_INVALID', reason: 'upgrade-ambiguous' });
  t.match(handshakeProblem(req(['Upgrade', 'websocket', ...key], 'PUT')), { reason: 'method' });
  t.match(handshakeProblem(req(['Upgrade', 'websocket', ...key], 'GET', 0)), { reason: 'http-version' });
  t.match(handshakeProblem(req(['Upgrade', 'websocket', ...key, 'Content-Length', '1'])), { reason: 'body' });
  t.match(handshakeProblem(req(['Upgrade', 'websocket', ...key, 'Content-Length', '0', 'content-length', '0'])), { reason: 'body' });
  t.equal(handshakeProblem(req(['Upgrade', 'websocket', ...key, 'Content-Length', '0'])), null, 'an empty body is no body');
  t.match(handshakeProblem(req(['Upgrade', 'websocket', ...key, 'Transfer-Encoding', 'identity'])), { reason: 'body' });
  t.match(handshakeProblem(req(['Upgrade', 'websocket', 'Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ'])), { reason: 'sec-websocket-key' });
  t.match(handshakeProblem(req(['Upgrade', 'websocket', 'Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZR=='])), { reason: 'sec-websocket-key' }, 'padding bits must be zero: not 16 bytes');
  t.match(handshakeProblem(req(['Upgrade', 'websocket', 'Sec-WebSocket-Key', ''])), { reason: 'sec-websocket-key' });
});
