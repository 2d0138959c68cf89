/**
 * Policy compilation: a bad rule is refused when the config loads, with the key path that names it,
 * and every problem in the policy is reported at once.
 */
import t from 'tap';
import type { RouteConfig } from '../../src/config/schema.js';
import { compilePolicy } from '../../src/policy/compile-policy.js';
import { PolicyCompileError } from '../../src/policy/policy-compile-error.js';

function route(over: Record<string, unknown>): RouteConfig {
  return { name: 'r', match: { pathPrefix: '/' }, upstream: 'backend', allow: [{ dns: 'a.example.com' }], deny: [], ...over } as RouteConfig;
}

function issuesOf(routes: readonly unknown[]): { path: string; message: string }[] {
  try {
    compilePolicy(routes as RouteConfig[]);
  } catch (err) {
    if (err instanceof PolicyCompileError) return err.issues;
    throw err;
  }
  return [];
}

t.test('each bad value is named by its key path', async (t) => {
  const rows: [string, Record<string, unknown>, string, RegExp][] = [
    ['spiffe without scheme', { allow: [{ spiffe: 'example.org/ns/a' }] }, 'routes[1].allow[0].spiffe', /spiffe:\/\//],
    ['glob a**b', { allow: [{ dns: 'a.example.com' }, { spiffe: 'spiffe://example.org/a**b' }] }, 'routes[1].allow[1].spiffe', /whole segment/],
    ['uri a**b', { deny: [{ uri: 'https://x/a**' }] }, 'routes[1].deny[0].uri', /whole segment/],
    ['bad CIDR', { allow: [{ ip: '10.0.0.0/40' }] }, 'routes[1].allow[0].ip', /prefix/],
    ['bad IP', { allow: [{ ip: '10.0.0.256' }] }, 'routes[1].allow[0].ip', /not an IP/],
    ['fingerprint too short', { allow: [{ fingerprint: 'abcd' }] }, 'routes[1].allow[0].fingerprint', /64 hex/],
    ['fingerprint not hex', { allow: [{ fingerprint: 'zz'.repeat(32) }] }, 'routes[1].allow[0].fingerprint', /64 hex/],
    ['serial not hex', { allow: [{ serial: '12:G4' }] }, 'routes[1].allow[0].serial', /hex/],
    ['unknown DN attribute', { allow: [{ subject: { Department: 'x' } }] }, 'routes[1].allow[0].subject.Department', /unknown DN attribute/],
    ['empty DN matcher', { allow: [{ issuer: {} }] }, 'routes[1].allow[0].issuer', /DN attribute names/],
    ['DN a**b', { allow: [{ subject: { CN: 'a**b' } }] }, 'routes[1].allow[0].subject.CN', /whole value/],
    ['email without @', { allow: [{ email: 'example.com' }] }, 'routes[1].allow[0].email', /local@domain/],
    ['dns with a port', { allow: [{ dns: 'a.example.com:443' }] }, 'routes[1].allow[0].dns', /DNS name/],
    ['empty selector', { allow: [{}] }, 'routes[1].allow[0]', /at least one field/],
    ['unknown selector field', { deny: [{ spifee: 'spiffe://example.org/x' }] }, 'routes[1].deny[0].spifee', /unknown selector field/],
    ['non-string value', { allow: [{ dns: 42 }] }, 'routes[1].allow[0].dns', /non-empty string/],
    ['allow not a list', { allow: { dns: 'x' } }, 'routes[1].allow', /list/],
    ['path and pathPrefix', { match: { path: '/a', pathPrefix: '/a' } }, 'routes[1].match', /exactly one/],
    ['neither path nor pathPrefix', { match: { host: 'a.example.com' } }, 'routes[1].match', /exactly one/],
    ['non-normalized path', { match: { path: '/a//b' } }, 'routes[1].match.path', /write "\/a\/b"/],
    ['dot segment in prefix', { match: { pathPrefix: '/a/../b' } }, 'routes[1].match.pathPrefix', /write "\/b"/],
    ['encoded unreserved in prefix', { match: { pathPrefix: '/%61dmin' } }, 'routes[1].match.pathPrefix', /write "\/admin"/],
    ['encoded slash in path', { match: { path: '/a%2Fb' } }, 'routes[1].match.path', /encoded-slash/],
    ['query in path', { match: { path: '/a?b=1' } }, 'routes[1].match.path', /"\?"/],
    ['glob in path', { match: { pathPrefix: '/orders/*' } }, 'routes[1].match.pathPrefix', /globs are not supported/],
    ['relative path', { match: { path: 'orders' } }, 'routes[1].match.path', /starting with/],
    ['host with port', { match: { host: 'api.example.com:8443', pathPrefix: '/' } }, 'routes[1].match.host', /no port/],
    ['host wildcard mid-name', { match: { host: 'api.*.com', pathPrefix: '/' } }, 'routes[1].match.host', /wildcard/],
    ['host with scheme', { match: { host: 'https://api.example.com', pathPrefix: '/' } }, 'routes[1].match.host', /no scheme/],
    ['bad method', { match: { pathPrefix: '/', methods: ['GET', 'PO ST'] } }, 'routes[1].match.methods[1]', /method/],
    ['empty methods', { match: { pathPrefix: '/', methods: [] } }, 'routes[1].match.methods', /non-empty/],
    ['unknown match key', { match: { pathPrefix: '/', hosts: 'x' } }, 'routes[1].match.hosts', /unknown key/],
    ['unknown route key', { denyy: [] }, 'routes[1].denyy', /unknown key/],
    ['DN pattern not a string', { allow: [{ subject: { CN: 42 } }] }, 'routes[1].allow[0].subject.CN', /non-empty pattern/],
    ['empty DN pattern', { deny: [{ issuer: { OU: '' } }] }, 'routes[1].deny[0].issuer.OU', /non-empty pattern/],
    ['selector not a mapping', { allow: ['spiffe://example.org/ns/a'] }, 'routes[1].allow[0]', /selector mapping/],
    ['spiffe trust domain with an empty label', { allow: [{ spiffe: 'spiffe://example..org/*' }] }, 'routes[1].allow[0].spiffe', /empty label/],
    ['uri pattern with an empty authority', { allow: [{ uri: 'https:///svc/*' }] }, 'routes[1].allow[0].uri', /empty authority/],
    ['IPv4-mapped CIDR with host bits', { allow: [{ ip: '::ffff:10.0.0.1/104' }] }, 'routes[1].allow[0].ip', /host bits/],
    ['empty route name', { name: '' }, 'routes[1].name', /non-empty string/],
    ['upstream not a string', { upstream: 7 }, 'routes[1].upstream', /non-empty string/],
    ['empty host', { match: { host: '', pathPrefix: '/' } }, 'routes[1].match.host', /host name/],
    ['host not a string', { match: { host: ['a.example.com'], pathPrefix: '/' } }, 'routes[1].match.host', /host name/],
  ];
  for (const [name, over, path, message] of rows) {
    const issues = issuesOf([route({}), route(over)]);
    t.equal(issues.length, 1, `${name}: one issue (${JSON.stringify(issues)})`);
    t.equal(issues[0]?.path, path, `${name}: path`);
    t.match(issues[0]?.message ?? '', message, `${name}: message`);
  }
});

t.test('a route that is not a mapping is named by its index, with what it lacks', async (t) => {
  for (const bad of ['orders', null, ['GET', '/orders']]) {
    const issues = issuesOf([route({}), bad]);
    t.same(issues.map((i) => i.path), ['routes[1]', 'routes[1].name', 'routes[1].upstream', 'routes[1].match', 'routes[1].match'], JSON.stringify(bad));
    t.match(issues[0]?.message ?? '', /route mapping/);
  }
});

t.test('all problems are reported together, and the error message names them', async (t) => {
  let caught: unknown;
  try {
    compilePolicy([
      route({ allow: [{ spiffe: 'nope' }, { ip: 'x' }] }),
      route({ deny: [{ subject: { Nope: 'x' }, serial: 'zz' }] }),
    ]);
  } catch (err) {
    caught = err;
  }
  t.ok(caught instanceof PolicyCompileError);
  t.ok(caught instanceof Error);
  const err = caught as PolicyCompileError;
  t.equal(err.name, 'PolicyCompileError');
  t.same(
    err.issues.map((i) => i.path),
    ['routes[0].allow[0].spiffe', 'routes[0].allow[1].ip', 'routes[1].deny[0].subject.Nope', 'routes[1].deny[0].serial'],
  );
  t.match(err.message, /routes\[0\]\.allow\[0\]\.spiffe: /);
  t.match(err.message, /4 problems/);
});

t.test('valid policies compile, including OIDs, aliases and every field', async (t) => {
  const policy = compilePolicy([
    route({
      match: { host: '*.example.com', pathPrefix: '/orders/', methods: ['get', 'POST'] },
      allow: [
        {
          subject: { CN: 'x', '2.5.4.11': 'y', commonName: 'x', emailAddress: '*@example.com' },
          issuer: { O: 'Acme' },
          spiffe: 'spiffe://example.org/**',
          uri: 'https://*.example.com/**',
          dns: '*.example.com',
          email: '*@example.com',
          ip: 'fd00::/8',
          fingerprint: 'AB:'.repeat(31) + 'AB',
          serial: '00:01',
        },
      ],
      deny: [{ subject: { OU: 'contractors' } }],
    }),
  ]);
  const r = policy.routes[0]!;
  t.equal(r.match.description, 'host=*.example.com pathPrefix=/orders/ methods=GET,POST');
  t.equal(r.allow[0]?.checks.length, 12);
  t.equal(r.allow[0]?.rule, 'routes[0].allow[0]');
  t.equal(r.deny[0]?.rule, 'routes[0].deny[0]');
  t.throws(() => compilePolicy('nope' as never), PolicyCompileError);
});
