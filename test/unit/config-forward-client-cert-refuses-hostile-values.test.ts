// forwardClientCert (issue 12), top level and per route, against what a typo or a hostile config
// would hold: strings, numbers, null, lists, unknown subkeys and a chain without its certificate
// (RFC 9440 2.3) are refused, each naming its key path; defaults and per-route resolution hold.
import t from 'tap';
import { stringify } from 'yaml';
import { parseConfigText } from '../../src/config/load-config.js';
import { compileRouteForwarding } from '../../src/proxy/route-forwarding.js';
import { configIssuesOf } from '../helpers/config-issues.js';

const BASE = {
  listen: { host: '127.0.0.1', port: 8443 },
  tls: { cert: './gateway.crt', key: './gateway.key', clientCA: './ca.pem' },
  upstreams: { orders: { url: 'https://10.0.0.11:9443', tls: { cert: './c.crt', key: './c.key', ca: './ca.pem', servername: 'orders.internal' } } },
  routes: [{ name: 'orders', match: { pathPrefix: '/orders' }, upstream: 'orders', allow: [{ spiffe: 'spiffe://example.org/ns/*/sa/billing' }] }],
};

type Obj = Record<string, unknown>;

function withPatch(patch: (c: Obj) => void): string {
  const c = structuredClone(BASE) as unknown as Obj;
  patch(c);
  return stringify(c);
}
const route = (c: Obj) => (c['routes'] as Obj[])[0]!;

t.test('defaults: XFCC only', async (t) => {
  const config = parseConfigText(withPatch(() => {}), '/etc/gw/gateway.yaml');
  t.strictSame(config.forwardClientCert, { xfcc: true, clientCert: false, clientCertChain: false });
  t.equal(config.routes[0]!.forwardClientCert, undefined);
  t.strictSame(compileRouteForwarding(config.routes[0]!, config.forwardClientCert, undefined).identityHeaders, { xfcc: true, clientCert: false, clientCertChain: false });
});

t.test('a route overrides the top level field by field', async (t) => {
  const config = parseConfigText(
    withPatch((c) => {
      c['forwardClientCert'] = { clientCert: true, clientCertChain: true };
      route(c)['forwardClientCert'] = { xfcc: false };
      (c['routes'] as Obj[]).push({ name: 'leaf', match: { pathPrefix: '/leaf' }, upstream: 'orders', forwardClientCert: { clientCertChain: false } });
      (c['routes'] as Obj[]).push({ name: 'inherit', match: { pathPrefix: '/i' }, upstream: 'orders', forwardClientCert: {} });
    }),
    '/etc/gw/gateway.yaml',
  );
  const resolved = config.routes.map((r) => compileRouteForwarding(r, config.forwardClientCert, undefined).identityHeaders);
  t.strictSame(resolved, [
    { xfcc: false, clientCert: true, clientCertChain: true },
    { xfcc: true, clientCert: true, clientCertChain: false },
    { xfcc: true, clientCert: true, clientCertChain: true },
  ]);
});

t.test('a route may send Client-Cert while the top level does not', async (t) => {
  const text = withPatch((c) => (route(c)['forwardClientCert'] = { clientCert: true, clientCertChain: true }));
  t.strictSame(configIssuesOf(text), []);
});

const REFUSED: Array<[string, (c: Obj) => void, string, RegExp]> = [
  ['a string', (c) => (c['forwardClientCert'] = 'yes'), 'forwardClientCert', /object/],
  ['null', (c) => (c['forwardClientCert'] = null), 'forwardClientCert', /object/],
  ['a list', (c) => (c['forwardClientCert'] = ['xfcc']), 'forwardClientCert', /object/],
  ['a string flag', (c) => (c['forwardClientCert'] = { clientCert: 'true' }), 'forwardClientCert.clientCert', /boolean/],
  ['a numeric flag', (c) => (c['forwardClientCert'] = { xfcc: 1 }), 'forwardClientCert.xfcc', /boolean/],
  ['a null flag', (c) => (c['forwardClientCert'] = { clientCertChain: null }), 'forwardClientCert.clientCertChain', /boolean/],
  ['an unknown subkey', (c) => (c['forwardClientCert'] = { clientCertHash: true }), 'forwardClientCert', /clientCertHash/],
  ['a differently cased subkey', (c) => (c['forwardClientCert'] = { ClientCert: true }), 'forwardClientCert', /ClientCert/],
  ['the chain without the certificate', (c) => (c['forwardClientCert'] = { clientCertChain: true }), 'forwardClientCert.clientCertChain', /only sent with Client-Cert.*clientCert: true/],
  ['a route string', (c) => (route(c)['forwardClientCert'] = 'off'), 'routes[0].forwardClientCert', /object/],
  ['a route null', (c) => (route(c)['forwardClientCert'] = null), 'routes[0].forwardClientCert', /object/],
  ['a route numeric flag', (c) => (route(c)['forwardClientCert'] = { clientCert: 0 }), 'routes[0].forwardClientCert.clientCert', /boolean/],
  ['a route null flag', (c) => (route(c)['forwardClientCert'] = { xfcc: null }), 'routes[0].forwardClientCert.xfcc', /boolean/],
  ['a route unknown subkey', (c) => (route(c)['forwardClientCert'] = { header: 'Client-Cert' }), 'routes[0].forwardClientCert', /header/],
  ['a route chain without the certificate', (c) => (route(c)['forwardClientCert'] = { clientCertChain: true }), 'routes[0].forwardClientCert.clientCertChain', /only sent with Client-Cert/],
  [
    'a route that drops the certificate but keeps the inherited chain',
    (c) => {
      c['forwardClientCert'] = { clientCert: true, clientCertChain: true };
      route(c)['forwardClientCert'] = { clientCert: false };
    },
    'routes[0].forwardClientCert.clientCertChain',
    /clientCertChain: false/,
  ],
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

t.test('a huge config value is refused without trouble', async (t) => {
  const issues = configIssuesOf(withPatch((c) => (c['forwardClientCert'] = { xfcc: 'x'.repeat(100_000) })));
  t.ok(issues.some((i) => i.path === 'forwardClientCert.xfcc'));
  t.ok(issues.every((i) => i.message.length < 500), 'the message does not echo the value');
});
