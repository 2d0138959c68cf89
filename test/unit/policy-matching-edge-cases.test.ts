/**
 * Policy matching at the edges the main engine tests do not reach: host names that differ only
 * after their length matched, wildcards over the wrong parent, FQDN dots on either side,
 * case-insensitive exact paths, IPv6 selectors written without "::" or with an IPv4 tail, an
 * empty selector (matches nobody), and the explanation of a one-route policy.
 */
import t from 'tap';
import type { RouteConfig, SelectorConfig } from '../../src/config/schema.js';
import type { PeerIdentity } from '../../src/identity/peer-identity.js';
import { compilePolicy } from '../../src/policy/compile-policy.js';
import { decide, selectorMatches } from '../../src/policy/decide.js';
import { explain } from '../../src/policy/explain.js';
import type { CompiledSelector, Decision, RequestAttributes } from '../../src/policy/types.js';

const identity = (ip: string[] = []): PeerIdentity => ({
  subject: { attributes: [{ type: 'CN', value: 'billing' }], rfc4514: 'CN=billing' },
  issuer: { attributes: [{ type: 'CN', value: 'CA' }], rfc4514: 'CN=CA' },
  san: { dns: [], uri: [], email: [], ip },
  spiffe: { uri: 'spiffe://example.org/billing', trustDomain: 'example.org', path: '/billing' },
  serial: '01',
  fingerprint256: 'ab'.repeat(32),
  notBefore: new Date(0),
  notAfter: new Date(0),
});
const anyone: SelectorConfig[] = [{ spiffe: 'spiffe://example.org/**' }];
const route = (name: string, match: RouteConfig['match'], allow: SelectorConfig[] = anyone): RouteConfig => ({ name, match, upstream: 'u', allow, deny: [] });
const req = (path: string, host: string | null = 'api.example.com', method = 'GET'): RequestAttributes => ({ method, host, path });
const routeOf = (d: Decision): string => (d.kind === 'no-route' ? 'no-route' : d.route.name);

t.test('exact hosts: same length is not the same name', async (t) => {
  const policy = compilePolicy([route('api', { host: 'api.example.com', pathPrefix: '/' })]);
  t.equal(routeOf(decide(policy, identity(), req('/', 'api.example.com'))), 'api');
  t.equal(routeOf(decide(policy, identity(), req('/', 'API.Example.Com'))), 'api', 'ASCII case does not matter');
  t.equal(routeOf(decide(policy, identity(), req('/', 'api.example.com.'))), 'api', 'the FQDN form is the same host');
  t.equal(routeOf(decide(policy, identity(), req('/', 'api.example.org'))), 'no-route', 'differs in the last label');
  t.equal(routeOf(decide(policy, identity(), req('/', 'apx.example.com'))), 'no-route', 'differs in the first label');
  t.equal(routeOf(decide(policy, identity(), req('/', null))), 'no-route', 'no Host at all');
});

t.test('a configured host written with the FQDN dot matches both spellings', async (t) => {
  const policy = compilePolicy([route('api', { host: 'API.example.com.', pathPrefix: '/' })]);
  t.equal(policy.routes[0]!.match.host, 'api.example.com');
  t.equal(routeOf(decide(policy, identity(), req('/', 'api.example.com'))), 'api');
  t.equal(routeOf(decide(policy, identity(), req('/', 'api.example.com.'))), 'api');
});

t.test('wildcard hosts: one label under exactly that parent', async (t) => {
  const policy = compilePolicy([route('wild', { host: '*.example.com', pathPrefix: '/' })]);
  t.equal(routeOf(decide(policy, identity(), req('/', 'a.example.com'))), 'wild');
  t.equal(routeOf(decide(policy, identity(), req('/', 'A.EXAMPLE.COM.'))), 'wild');
  t.equal(routeOf(decide(policy, identity(), req('/', 'a.example.org'))), 'no-route', 'another parent of the same length');
  t.equal(routeOf(decide(policy, identity(), req('/', 'a.bexample.com'))), 'no-route', 'the suffix must start at a label');
  t.equal(routeOf(decide(policy, identity(), req('/', 'a.b.example.com'))), 'no-route', 'two labels');
  t.equal(routeOf(decide(policy, identity(), req('/', 'example.com'))), 'no-route', 'the parent itself');
  t.equal(routeOf(decide(policy, identity(), req('/', '.example.com'))), 'no-route', 'an empty label');
});

t.test('case-insensitive exact paths (server.paths.caseSensitive: false)', async (t) => {
  const policy = compilePolicy([route('list', { path: '/Orders/List' }), route('tree', { pathPrefix: '/Admin/' })], { caseSensitive: false });
  t.equal(policy.routes[0]!.match.description, 'path=/orders/list (case-insensitive)');
  for (const path of ['/orders/list', '/ORDERS/LIST', '/Orders/List']) t.equal(routeOf(decide(policy, identity(), req(path))), 'list', path);
  for (const path of ['/orders/lis', '/orders/list/', '/orders/lists', '/orders/liso']) t.equal(routeOf(decide(policy, identity(), req(path))), 'no-route', path);
  t.equal(routeOf(decide(policy, identity(), req('/admin'))), 'tree', 'the prefix, folded, without its trailing slash');
  t.equal(routeOf(decide(policy, identity(), req('/ADMIN/x'))), 'tree');
  t.equal(routeOf(decide(policy, identity(), req('/adminx'))), 'no-route', 'segment boundary still applies');
});

t.test('IPv6 selectors without "::" and with an IPv4 tail', async (t) => {
  const policy = compilePolicy([
    route('full', { pathPrefix: '/full' }, [{ ip: 'fd00:0:0:0:0:0:0:0/16' }]),
    route('mapped', { pathPrefix: '/mapped' }, [{ ip: '::ffff:10.0.0.0/104' }]),
  ]);
  const kind = (path: string, ips: string[]) => decide(policy, identity(ips), req(path)).kind;
  t.equal(kind('/full', ['fd00::7']), 'allow');
  t.equal(kind('/full', ['fd01::7']), 'deny');
  t.equal(kind('/mapped', ['::ffff:10.200.0.1']), 'allow', 'inside ::ffff:10.0.0.0/104');
  t.equal(kind('/mapped', ['::ffff:11.0.0.1']), 'deny');
  t.equal(kind('/mapped', ['not an address']), 'deny', 'a SAN that is not an address matches nothing');
});

t.test('an empty selector matches nobody', async (t) => {
  // compilePolicy refuses empty selectors; selectorMatches must not turn one into "anyone" should
  // a selector ever reach it without checks.
  const empty: CompiledSelector = { rule: 'routes[0].allow[0]', list: 'allow', index: 0, description: '(empty selector)', checks: [] };
  t.equal(selectorMatches(empty, identity()), false);
});

t.test('the explanation of a one-route policy counts one route', async (t) => {
  const policy = compilePolicy([route('only', { path: '/only' })]);
  t.equal(explain(policy, identity(), req('/other')).summary, 'no-route: nothing matches GET api.example.com /other (1 route tried)');
  t.equal(explain(policy, identity(), req('/other', null)).summary, 'no-route: nothing matches GET (no host) /other (1 route tried)');
});
