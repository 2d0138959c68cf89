/**
 * Policy decisions: route selection (first match wins, segment-boundary prefixes, host wildcards,
 * methods) and principal selectors (deny before allow, ANDed fields, ORed entries, default deny).
 */
import t from 'tap';
import type { RouteConfig, SelectorConfig } from '../../src/config/schema.js';
import type { DnAttribute, PeerIdentity } from '../../src/identity/peer-identity.js';
import { compilePolicy } from '../../src/policy/compile-policy.js';
import { decide } from '../../src/policy/decide.js';
import type { Decision, RequestAttributes } from '../../src/policy/types.js';

function dn(attributes: DnAttribute[]) {
  return { attributes, rfc4514: attributes.map((a) => `${a.type}=${a.value}`).reverse().join(',') };
}

function identity(overrides: Partial<PeerIdentity> & { sanOverrides?: Partial<PeerIdentity['san']> } = {}): PeerIdentity {
  const { sanOverrides, ...rest } = overrides;
  return {
    subject: dn([
      { type: 'O', value: 'Acme' },
      { type: 'OU', value: 'payments' },
      { type: 'OU', value: 'billing' },
      { type: 'CN', value: 'billing-api' },
    ]),
    issuer: dn([{ type: 'O', value: 'Acme' }, { type: 'CN', value: 'Acme Issuing CA 1' }]),
    san: { dns: ['billing.internal.example.com'], uri: [], email: ['billing@Example.com'], ip: ['10.1.2.3', 'fd00::7'], ...sanOverrides },
    spiffe: { uri: 'spiffe://example.org/ns/default/sa/billing', trustDomain: 'example.org', path: '/ns/default/sa/billing' },
    serial: '0A1B2C',
    fingerprint256: 'ab'.repeat(32),
    notBefore: new Date('2025-01-01T00:00:00Z'),
    notAfter: new Date('2030-01-01T00:00:00Z'),
    ...rest,
  };
}

function route(name: string, match: RouteConfig['match'], allow: SelectorConfig[], deny: SelectorConfig[] = []): RouteConfig {
  return { name, match, upstream: 'backend', allow, deny };
}

function req(path: string, method = 'GET', host: string | null = 'api.example.com'): RequestAttributes {
  return { method, host, path };
}

function outcome(d: Decision): string {
  switch (d.kind) {
    case 'no-route':
      return 'no-route';
    case 'allow':
      return `allow ${d.route.name} ${d.rule}`;
    case 'deny':
      return `deny ${d.route.name} ${d.reason} ${d.rule ?? '-'}`;
  }
}

const billing = identity();

t.test('path matching: exact, prefix on segment boundaries', async (t) => {
  const everyone: SelectorConfig[] = [{ spiffe: 'spiffe://example.org/**' }];
  const policy = compilePolicy([
    route('exact', { path: '/health' }, everyone),
    route('orders', { pathPrefix: '/orders' }, everyone),
    route('items', { pathPrefix: '/items/' }, everyone),
    route('root', { pathPrefix: '/static' }, everyone),
  ]);
  const rows: [string, string][] = [
    ['/health', 'allow exact routes[0].allow[0]'],
    ['/health/', 'no-route'],
    ['/healthz', 'no-route'],
    ['/orders', 'allow orders routes[1].allow[0]'],
    ['/orders/', 'allow orders routes[1].allow[0]'],
    ['/orders/42', 'allow orders routes[1].allow[0]'],
    ['/orders/42/lines', 'allow orders routes[1].allow[0]'],
    ['/ordersx', 'no-route'],
    ['/order', 'no-route'],
    ['/items', 'allow items routes[2].allow[0]'],
    ['/items/', 'allow items routes[2].allow[0]'],
    ['/items/x', 'allow items routes[2].allow[0]'],
    ['/itemsx', 'no-route'],
    ['/', 'no-route'],
  ];
  for (const [path, expected] of rows) t.equal(outcome(decide(policy, billing, req(path))), expected, path);

  const catchAll = compilePolicy([route('all', { pathPrefix: '/' }, everyone)]);
  for (const path of ['/', '/a', '/a/b/', '/ordersx']) {
    t.equal(outcome(decide(catchAll, billing, req(path))), 'allow all routes[0].allow[0]', `pathPrefix / covers ${path}`);
  }
});

t.test('first matching route wins, even when it denies', async (t) => {
  const policy = compilePolicy([
    route('admin', { pathPrefix: '/orders/admin' }, [{ subject: { OU: 'ops' } }]),
    route('orders', { pathPrefix: '/orders' }, [{ subject: { OU: 'payments' } }]),
  ]);
  t.equal(outcome(decide(policy, billing, req('/orders/admin/x'))), 'deny admin no-allow-match -');
  t.equal(outcome(decide(policy, billing, req('/orders/adminx'))), 'allow orders routes[1].allow[0]');
  t.equal(outcome(decide(policy, billing, req('/orders/1'))), 'allow orders routes[1].allow[0]');
});

t.test('methods and host', async (t) => {
  const anyone: SelectorConfig[] = [{ subject: { O: 'Acme' } }];
  const policy = compilePolicy([
    route('read', { pathPrefix: '/orders', methods: ['GET', 'head'] }, anyone),
    route('wild', { host: '*.example.com', pathPrefix: '/w' }, anyone),
    route('exact-host', { host: 'API.internal', pathPrefix: '/e' }, anyone),
  ]);
  const rows: [RequestAttributes, string][] = [
    [req('/orders', 'GET'), 'allow read routes[0].allow[0]'],
    [req('/orders', 'HEAD'), 'allow read routes[0].allow[0]'],
    [req('/orders', 'get'), 'allow read routes[0].allow[0]'],
    [req('/orders', 'POST'), 'no-route'],
    [req('/w', 'GET', 'a.example.com'), 'allow wild routes[1].allow[0]'],
    [req('/w', 'GET', 'A.Example.COM'), 'allow wild routes[1].allow[0]'],
    [req('/w', 'GET', 'a.example.com.'), 'allow wild routes[1].allow[0]'],
    [req('/w', 'GET', 'example.com'), 'no-route'],
    [req('/w', 'GET', 'a.b.example.com'), 'no-route'],
    [req('/w', 'GET', '.example.com'), 'no-route'],
    [req('/w', 'GET', 'aexample.com'), 'no-route'],
    [req('/w', 'GET', null), 'no-route'],
    [req('/e', 'GET', 'api.internal'), 'allow exact-host routes[2].allow[0]'],
    [req('/e', 'GET', 'API.INTERNAL'), 'allow exact-host routes[2].allow[0]'],
    [req('/e', 'GET', 'api.internal.evil'), 'no-route'],
    [req('/e', 'GET', 'xapi.internal'), 'no-route'],
  ];
  for (const [r, expected] of rows) t.equal(outcome(decide(policy, billing, r)), expected, `${r.method} ${r.host} ${r.path}`);
});

t.test('deny is checked before allow; entries are ORed, fields ANDed', async (t) => {
  const policy = compilePolicy([
    route(
      'orders',
      { pathPrefix: '/orders' },
      [
        { spiffe: 'spiffe://example.org/ns/*/sa/frontend' },
        { spiffe: 'spiffe://example.org/ns/*/sa/billing', subject: { OU: 'payments' } },
      ],
      [{ subject: { OU: 'contractors' } }, { serial: '0x0a:1b:2c', dns: '*.internal.example.com' }],
    ),
  ]);
  t.equal(outcome(decide(policy, identity({ serial: 'FFFF' }), req('/orders'))), 'allow orders routes[0].allow[1]');
  t.equal(outcome(decide(policy, billing, req('/orders'))), 'deny orders denied-by-rule routes[0].deny[1]', 'deny wins though an allow entry matches');

  const contractor = identity({ subject: dn([{ type: 'OU', value: 'payments' }, { type: 'OU', value: 'contractors' }]), serial: '01' });
  t.equal(outcome(decide(policy, contractor, req('/orders'))), 'deny orders denied-by-rule routes[0].deny[0]');

  // AND: the right SPIFFE ID without the OU is not enough.
  const noOu = identity({ subject: dn([{ type: 'CN', value: 'billing-api' }]), serial: '01' });
  t.equal(outcome(decide(policy, noOu, req('/orders'))), 'deny orders no-allow-match -');

  const frontend = identity({
    spiffe: { uri: 'spiffe://example.org/ns/web/sa/frontend', trustDomain: 'example.org', path: '/ns/web/sa/frontend' },
    serial: '01',
  });
  t.equal(outcome(decide(policy, frontend, req('/orders'))), 'allow orders routes[0].allow[0]');

  t.equal(outcome(decide(policy, identity({ spiffe: null, serial: '01' }), req('/orders'))), 'deny orders no-allow-match -', 'no SPIFFE ID never matches a spiffe selector');
});

t.test('empty allow list admits nobody; no routes means no-route', async (t) => {
  const policy = compilePolicy([route('closed', { pathPrefix: '/' }, [])]);
  t.equal(outcome(decide(policy, billing, req('/x'))), 'deny closed no-allow-match -');
  t.equal(outcome(decide(compilePolicy([]), billing, req('/x'))), 'no-route');
});

t.test('DN matching: aliases, OIDs, multi-valued attributes, case-sensitive values', async (t) => {
  const id = identity({
    subject: dn([
      { type: 'DC', value: 'com' },
      { type: 'DC', value: 'example' },
      { type: 'O', value: 'Acme, Inc.' },
      { type: 'OU', value: 'payments' },
      { type: 'OU', value: 'eu-west' },
      { type: '2.5.4.3', value: 'billing-api' },
      { type: 'emailAddress', value: 'ops@example.com' },
      { type: '1.3.6.1.4.1.99999.1', value: 'custom' },
    ]),
  });
  const rows: [SelectorConfig, boolean][] = [
    [{ subject: { CN: 'billing-api' } }, true],
    [{ subject: { commonName: 'billing-api' } }, true],
    [{ subject: { cn: 'billing-*' } }, true],
    [{ subject: { '2.5.4.3': 'billing-api' } }, true],
    [{ subject: { OU: 'payments' } }, true],
    [{ subject: { OU: 'eu-west' } }, true],
    [{ subject: { organizationalUnitName: 'eu-*' } }, true],
    [{ subject: { OU: 'payments', CN: 'billing-api' } }, true],
    [{ subject: { OU: 'ops' } }, false],
    [{ subject: { OU: 'Payments' } }, false],
    [{ subject: { O: 'Acme, Inc.' } }, true],
    [{ subject: { organizationName: 'Acme*' } }, true],
    [{ subject: { DC: 'example' } }, true],
    [{ subject: { E: 'ops@example.com' } }, true],
    [{ subject: { emailAddress: '*@example.com' } }, true],
    [{ subject: { '1.3.6.1.4.1.99999.1': 'custom' } }, true],
    [{ subject: { L: '*' } }, false],
    [{ subject: { CN: 'billing-api', L: '*' } }, false],
    [{ issuer: { CN: 'Acme Issuing CA 1' } }, true],
    [{ issuer: { CN: 'billing-api' } }, false],
    [{ subject: { CN: 'Acme Issuing CA 1' } }, false],
  ];
  for (const [sel, expected] of rows) {
    const policy = compilePolicy([route('r', { pathPrefix: '/' }, [sel])]);
    t.equal(decide(policy, id, req('/')).kind, expected ? 'allow' : 'deny', JSON.stringify(sel));
  }
});

t.test('SAN selectors: any value of the type may match', async (t) => {
  const id = identity({
    sanOverrides: {
      dns: ['a.example.com', 'Billing.Internal.Example.com'],
      uri: ['https://svc.example.com/billing'],
      email: ['billing@Example.COM'],
      ip: ['192.168.1.9', '10.9.8.7', 'fd00::7'],
    },
  });
  const rows: [SelectorConfig, boolean][] = [
    [{ dns: 'billing.internal.example.com' }, true],
    [{ dns: '*.internal.example.com' }, true],
    [{ dns: '*.example.com' }, true],
    [{ dns: 'other.example.com' }, false],
    [{ uri: 'https://svc.example.com/*' }, true],
    [{ uri: 'https://svc.example.com/orders' }, false],
    [{ email: 'billing@example.com' }, true],
    [{ email: 'Billing@example.com' }, false],
    [{ ip: '10.0.0.0/8' }, true],
    [{ ip: '10.9.8.7' }, true],
    [{ ip: '172.16.0.0/12' }, false],
    [{ ip: 'fd00::/8' }, true],
    [{ ip: 'FD00:0::7' }, true],
    [{ ip: 'fd00::8' }, false],
    [{ ip: '10.0.0.0/8', dns: 'nope.example.com' }, false],
  ];
  for (const [sel, expected] of rows) {
    const policy = compilePolicy([route('r', { pathPrefix: '/' }, [sel])]);
    t.equal(decide(policy, id, req('/')).kind, expected ? 'allow' : 'deny', JSON.stringify(sel));
  }
  const none = identity({ sanOverrides: { dns: [], uri: [], email: [], ip: [] } });
  for (const sel of [{ dns: '*.example.com' }, { uri: '**' }, { email: '*' }, { ip: '0.0.0.0/0' }, { ip: '::/0' }]) {
    const policy = compilePolicy([route('r', { pathPrefix: '/' }, [sel])]);
    t.equal(decide(policy, none, req('/')).kind, 'deny', `no SAN of the type: ${JSON.stringify(sel)}`);
  }
});

t.test('fingerprint and serial are normalized at compile time', async (t) => {
  const id = identity({ serial: '0A1B2C', fingerprint256: 'ab'.repeat(32) });
  const rows: [SelectorConfig, boolean][] = [
    [{ fingerprint: 'ab'.repeat(32) }, true],
    [{ fingerprint: 'AB'.repeat(32) }, true],
    [{ fingerprint: Array(32).fill('AB').join(':') }, true],
    [{ fingerprint: 'ab'.repeat(31) + 'ac' }, false],
    [{ serial: '0A1B2C' }, true],
    [{ serial: '0a:1b:2c' }, true],
    [{ serial: '0x0A1B2C' }, true],
    [{ serial: '00:0a:1b:2c' }, true],
    [{ serial: 'A1B2C' }, true],
    [{ serial: '0A1B2D' }, false],
  ];
  for (const [sel, expected] of rows) {
    const policy = compilePolicy([route('r', { pathPrefix: '/' }, [sel])]);
    t.equal(decide(policy, id, req('/')).kind, expected ? 'allow' : 'deny', JSON.stringify(sel));
  }
});

t.test('decide returns the decision objects built at compile time', async (t) => {
  const policy = compilePolicy([route('r', { pathPrefix: '/' }, [{ subject: { OU: 'payments' } }], [{ subject: { OU: 'x' } }])]);
  const a = decide(policy, billing, req('/a'));
  const b = decide(policy, billing, req('/b'));
  t.equal(a, b, 'same object: nothing allocated per request');
  t.ok(Object.isFrozen(a));
  t.ok(Object.isFrozen(policy) && Object.isFrozen(policy.routes) && Object.isFrozen(policy.routes[0]));
  t.same(JSON.parse(JSON.stringify(a)), { kind: 'allow', route: { index: 0, name: 'r', upstream: 'backend' }, rule: 'routes[0].allow[0]' }, 'a decision logs compactly');
  t.equal(decide(policy, billing, req('/a')), decide(policy, billing, req('/c')));
});
