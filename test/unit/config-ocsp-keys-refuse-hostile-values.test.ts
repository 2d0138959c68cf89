// tls.ocsp, tls.stapling, tls.crlFromDistributionPoints and upstreams.X.tls.ocsp (issue 13)
// against what a typo or a hostile config would hold: wrong types, empty and huge values, URLs that
// are not http(s) or carry spaces, unknown DN attributes, unknown subkeys and duplicated keys are
// refused naming the key path; absent means the documented defaults (OCSP off, stapling off).
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load-config.js';
import { createDevPki } from '../../src/pki/dev-pki.js';
import { compileResponders } from '../../src/runtime/ocsp-stores.js';
import { configIssuesOf } from '../helpers/config-issues.js';

const BASE = {
  listen: { host: '127.0.0.1', port: 8443 },
  tls: { cert: './gateway.crt', key: './gateway.key', clientCA: './ca.pem' },
  upstreams: { orders: { url: 'https://10.0.0.11:9443', tls: { cert: './c.crt', key: './c.key', ca: './ca.pem', servername: 'orders.internal' } } },
  routes: [{ name: 'orders', match: { pathPrefix: '/orders' }, upstream: 'orders', allow: [{ spiffe: 'spiffe://example.org/ns/*/sa/billing' }] }],
};

function withTls(extra: Record<string, unknown>): string {
  const c = structuredClone(BASE) as unknown as { tls: Record<string, unknown> };
  Object.assign(c.tls, extra);
  return stringify(c);
}

function withUpstreamOcsp(value: unknown): string {
  const c = structuredClone(BASE) as unknown as { upstreams: { orders: { tls: Record<string, unknown> } } };
  c.upstreams.orders.tls['ocsp'] = value;
  return stringify(c);
}

t.test('absent: the documented defaults', async (t) => {
  const c = parseConfigText(stringify(BASE), '/etc/gw/gateway.yaml');
  t.same(c.tls.ocsp, { mode: 'off', responders: [], timeout: 2_000, onUnavailable: 'deny', cacheSize: 10_000, nonce: false, maxBytes: 65_536 });
  t.same(c.tls.stapling, { enabled: false, refresh: 3_600_000 });
  t.equal(c.tls.crlFromDistributionPoints, false);
  t.same(c.upstreams['orders']!.tls.ocsp, { mode: 'off', requireStapled: false, timeout: 2_000, onUnavailable: 'deny' });
  const full = parseConfigText(withTls({ ocsp: { mode: 'prefer', responders: [{ issuer: { CN: 'Example Intermediate CA' }, url: 'http://ocsp.internal:8080' }], timeout: '2s', onUnavailable: 'deny', cacheSize: 10000, nonce: false }, stapling: { enabled: true, refresh: '1h' } }), '/etc/gw/gateway.yaml');
  t.equal(full.tls.ocsp.mode, 'prefer', "the issue's example parses");
  t.equal(full.tls.stapling.refresh, 3_600_000);
});

t.test('tls.ocsp: bad values are refused naming the key', async (t) => {
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ mode: 'on' }, 'tls.ocsp.mode'],
    [{ mode: '' }, 'tls.ocsp.mode'],
    [{ mode: true }, 'tls.ocsp.mode'],
    [{ mode: ['prefer'] }, 'tls.ocsp.mode'],
    [{ timeout: '2' }, 'tls.ocsp.timeout'],
    [{ timeout: '0s' }, 'tls.ocsp.timeout'],
    [{ timeout: '1h' }, 'tls.ocsp.timeout'],
    [{ timeout: -1 }, 'tls.ocsp.timeout'],
    [{ onUnavailable: 'ignore' }, 'tls.ocsp.onUnavailable'],
    [{ cacheSize: 0 }, 'tls.ocsp.cacheSize'],
    [{ cacheSize: 1.5 }, 'tls.ocsp.cacheSize'],
    [{ cacheSize: 1e12 }, 'tls.ocsp.cacheSize'],
    [{ cacheSize: '100' }, 'tls.ocsp.cacheSize'],
    [{ nonce: 'yes' }, 'tls.ocsp.nonce'],
    [{ maxBytes: 10 }, 'tls.ocsp.maxBytes'],
    [{ maxBytes: 1e9 }, 'tls.ocsp.maxBytes'],
    [{ responders: 'http://ocsp' }, 'tls.ocsp.responders'],
    [{ responders: [{ url: 'http://ocsp' }] }, 'tls.ocsp.responders.0.issuer'],
    [{ responders: [{ issuer: { CN: 'x' } }] }, 'tls.ocsp.responders.0.url'],
    [{ responders: [{ issuer: { CN: 'x' }, url: 'ldap://ocsp' }] }, 'tls.ocsp.responders.0.url'],
    [{ responders: [{ issuer: { CN: 'x' }, url: 'http://a b' }] }, 'tls.ocsp.responders.0.url'],
    [{ responders: [{ issuer: { CN: 'x' }, url: '' }] }, 'tls.ocsp.responders.0.url'],
    [{ responders: [{ issuer: { CN: '' }, url: 'http://ocsp' }] }, 'tls.ocsp.responders.0.issuer.CN'],
    [{ responders: [{ issuer: { 'C N': 'x' }, url: 'http://ocsp' }] }, 'tls.ocsp.responders.0.issuer'],
    [{ responders: [{ issuer: { CN: 'x' }, url: 'http://ocsp', extra: 1 }] }, 'tls.ocsp.responders.0'],
    [{ responders: Array.from({ length: 1001 }, () => ({ issuer: { CN: 'x' }, url: 'http://ocsp' })) }, 'tls.ocsp.responders'],
    [{ mod: 'prefer' }, 'tls.ocsp'],
  ];
  for (const [ocsp, path] of cases) {
    const issues = configIssuesOf(withTls({ ocsp }));
    t.ok(issues.some((i) => i.path.startsWith(path.replace(/\.(\d+)/g, '[$1]')) || i.path.startsWith(path)), `${JSON.stringify(ocsp).slice(0, 80)} refused naming ${path}: ${JSON.stringify(issues).slice(0, 200)}`);
  }
  for (const bad of ['prefer', 1, [], true]) t.ok(configIssuesOf(withTls({ ocsp: bad })).some((i) => i.path.startsWith('tls.ocsp')), `tls.ocsp: ${JSON.stringify(bad)} refused`);
  const duplicated = stringify(BASE).replace('tls:\n', 'tls:\n  ocsp:\n    mode: prefer\n    mode: off\n');
  t.not(configIssuesOf(duplicated).length, 0, 'a duplicated key is refused, not merged');
});

t.test('tls.stapling, tls.crlFromDistributionPoints and upstreams.X.tls.ocsp: bad values refused', async (t) => {
  for (const [v, path] of [
    [{ stapling: { enabled: 'true' } }, 'tls.stapling.enabled'],
    [{ stapling: { refresh: '10ms' } }, 'tls.stapling.refresh'],
    [{ stapling: { refresh: 3600 } }, 'tls.stapling.refresh'],
    [{ stapling: { enable: true } }, 'tls.stapling'],
    [{ stapling: true }, 'tls.stapling'],
    [{ crlFromDistributionPoints: 'yes' }, 'tls.crlFromDistributionPoints'],
    [{ crlFromDistributionPoints: 1 }, 'tls.crlFromDistributionPoints'],
  ] as const) {
    const issues = configIssuesOf(withTls(v as Record<string, unknown>));
    t.ok(issues.some((i) => i.path.startsWith(path)), `${JSON.stringify(v)} refused naming ${path}: ${JSON.stringify(issues).slice(0, 160)}`);
  }
  for (const [v, path] of [
    [{ mode: 'always' }, 'upstreams.orders.tls.ocsp.mode'],
    [{ requireStapled: 'yes' }, 'upstreams.orders.tls.ocsp.requireStapled'],
    [{ timeout: '5' }, 'upstreams.orders.tls.ocsp.timeout'],
    [{ onUnavailable: 'maybe' }, 'upstreams.orders.tls.ocsp.onUnavailable'],
    [{ responders: [] }, 'upstreams.orders.tls.ocsp'],
    ['prefer', 'upstreams.orders.tls.ocsp'],
  ] as const) {
    const issues = configIssuesOf(withUpstreamOcsp(v));
    t.ok(issues.some((i) => i.path.startsWith(path)), `${JSON.stringify(v)} refused naming ${path}: ${JSON.stringify(issues).slice(0, 160)}`);
  }
});

t.test('responders: a selector that does not compile is refused naming its key; the first match wins, else the AIA', async (t) => {
  t.throws(() => compileResponders([{ issuer: { NOPE: 'x' }, url: 'http://a' }]), /tls\.ocsp\.responders\[0\]\.issuer\.NOPE/);
  const pki = await createDevPki();
  const inter = new X509Certificate(pki.intermediate.certPem);
  const leafDer = new X509Certificate(pki.clients['billing']!.certPem).raw;
  const pick = compileResponders([
    { issuer: { CN: 'Other CA' }, url: 'http://other' },
    { issuer: { CN: 'Example Dev * CA', O: 'Example' }, url: 'http://first' },
    { issuer: { CN: 'Example Dev Intermediate CA' }, url: 'http://second' },
  ]);
  t.equal(pick(leafDer, inter), 'http://first');
  t.equal(compileResponders([])(leafDer, inter), null, 'no entry and no AIA: no responder');
});
