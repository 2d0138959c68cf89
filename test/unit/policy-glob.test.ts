/**
 * Glob dialect of selector values: what `*` and `**` cover for each kind of value, and which
 * patterns are refused at compile time.
 */
import t from 'tap';
import {
  compileDnsPattern,
  compileDnValuePattern,
  compileEmailPattern,
  compileSpiffePattern,
  compileUriPattern,
  PatternError,
  type ValueMatcher,
} from '../../src/policy/glob.js';
import { compileIpPattern } from '../../src/policy/ip-matcher.js';

type Row = readonly [pattern: string, value: string, expected: boolean];

function table(name: string, compile: (p: string) => ValueMatcher, rows: readonly Row[]): void {
  t.test(name, async (t) => {
    for (const [pattern, value, expected] of rows) {
      t.equal(compile(pattern).test(value), expected, `${pattern} ${expected ? 'matches' : 'does not match'} ${value}`);
    }
  });
}

table('spiffe', compileSpiffePattern, [
  ['spiffe://example.org/ns/default/sa/billing', 'spiffe://example.org/ns/default/sa/billing', true],
  ['spiffe://example.org/ns/default/sa/billing', 'spiffe://example.org/ns/default/sa/billing2', false],
  ['spiffe://example.org/ns/default/sa/billing', 'spiffe://Example.org/ns/default/sa/billing', false],
  ['spiffe://example.org/ns/*/sa/billing', 'spiffe://example.org/ns/default/sa/billing', true],
  ['spiffe://example.org/ns/*/sa/billing', 'spiffe://example.org/ns/a/b/sa/billing', false],
  ['spiffe://example.org/ns/*/sa/billing', 'spiffe://example.org/ns//sa/billing', false],
  ['spiffe://example.org/ns/*/sa/billing', 'spiffe://example.org/ns/default/sa/billing/x', false],
  ['spiffe://example.org/ns/*/sa/billing', 'spiffe://other.org/ns/default/sa/billing', false],
  ['spiffe://example.org/ns/prod-*/sa/*', 'spiffe://example.org/ns/prod-eu/sa/api', true],
  ['spiffe://example.org/ns/prod-*/sa/*', 'spiffe://example.org/ns/prod-/sa/api', true],
  ['spiffe://example.org/ns/prod-*/sa/*', 'spiffe://example.org/ns/staging/sa/api', false],
  ['spiffe://example.org/ns/prod/**', 'spiffe://example.org/ns/prod/sa/api', true],
  ['spiffe://example.org/ns/prod/**', 'spiffe://example.org/ns/prod/a/b/c', true],
  ['spiffe://example.org/ns/prod/**', 'spiffe://example.org/ns/prod', false],
  ['spiffe://example.org/ns/prod/**', 'spiffe://example.org/ns/production/x', false],
  ['spiffe://example.org/**/sa/billing', 'spiffe://example.org/ns/prod/sa/billing', true],
  ['spiffe://example.org/**/sa/billing', 'spiffe://example.org/sa/billing', true],
  ['spiffe://example.org/**/sa/billing', 'spiffe://example.org/x/sa/billingx', false],
  ['spiffe://example.org/ns/**/billing', 'spiffe://example.org/ns/billing', true],
  ['spiffe://example.org/ns/**/billing', 'spiffe://example.org/ns/a/b/billing', true],
  ['spiffe://example.org/ns/**/billing', 'spiffe://example.org/ns/a/b/billingx', false],
  ['spiffe://example.org/ns/**/**/billing', 'spiffe://example.org/ns/billing', true],
  ['spiffe://example.org/**', 'spiffe://example.org.evil.com/x', false],
  ['spiffe://*.example.org/ns/a', 'spiffe://eu.example.org/ns/a', true],
  ['spiffe://*.example.org/ns/a', 'spiffe://a.b.example.org/ns/a', false],
  ['spiffe://*.example.org/ns/a', 'spiffe://example.org/ns/a', false],
  ['spiffe://*.example.org/ns/a', 'spiffe://evil.com/x.example.org/ns/a', false],
  ['spiffe://prod-*.example.org/ns/a', 'spiffe://prod-eu.example.org/ns/a', true],
  // regex specials are literal
  ['spiffe://example.org/a.b/(c)+', 'spiffe://example.org/a.b/(c)+', true],
  ['spiffe://example.org/a.b/*', 'spiffe://example.org/aXb/c', false],
  ['spiffe://example.org/a+/*', 'spiffe://example.org/aa/c', false],
  ['spiffe://example.org/what?/*', 'spiffe://example.org/what?/x', true],
  ['spiffe://example.org/what?/*', 'spiffe://example.org/wha/x', false],
  ['spiffe://example.org/[ab]/*', 'spiffe://example.org/a/x', false],
  ['spiffe://example.org', 'spiffe://example.org', true],
]);

table('uri', compileUriPattern, [
  ['https://svc.example.com/billing', 'https://svc.example.com/billing', true],
  ['https://svc.example.com/*', 'https://svc.example.com/billing', true],
  ['https://svc.example.com/*', 'https://svc.example.com/billing/x', false],
  ['https://svc.example.com/**', 'https://svc.example.com/billing/x', true],
  ['https://*.example.com/x', 'https://a.example.com/x', true],
  ['https://*.example.com/x', 'https://evil.com/.example.com/x', false],
  ['https://*.example.com/x', 'https://evil.com@a.example.com/x', false],
  ['https://*.example.com/x', 'https://a.b.example.com/x', false],
  ['urn:example:*', 'urn:example:billing', true],
  ['urn:example:*', 'urn:example:a/b', false],
]);

table('dns (case-insensitive, "." separated)', compileDnsPattern, [
  ['api.example.com', 'api.example.com', true],
  ['api.example.com', 'API.Example.COM', true],
  ['API.example.com', 'api.example.com', true],
  ['api.example.com', 'api.example.co', false],
  ['*.example.com', 'a.example.com', true],
  ['*.example.com', 'A.EXAMPLE.COM', true],
  ['*.example.com', 'example.com', false],
  ['*.example.com', 'a.b.example.com', false],
  ['*.example.com', 'aexample.com', false],
  ['**.example.com', 'a.b.example.com', true],
  ['**.example.com', 'example.com', false],
  ['svc-*.example.com', 'svc-1.example.com', true],
  ['svc-*.example.com', 'svc-1.x.example.com', false],
  ['a.example.com', 'aXexample.com', false],
]);

table('DN values (case-sensitive, one segment)', compileDnValuePattern, [
  ['billing', 'billing', true],
  ['billing', 'Billing', false],
  ['bill*', 'billing', true],
  ['*ing', 'billing', true],
  ['b*g', 'b/x.y g', true],
  ['*', 'anything at all', true],
  ['*', '', false],
  ['**', 'a/b.c', true],
  ['Acme, Inc.', 'Acme, Inc.', true],
  ['Acme, Inc.', 'Acme, Inc!', false],
  ['a.c', 'abc', false],
]);

table('email (local part case-sensitive, domain not)', compileEmailPattern, [
  ['alice@example.com', 'alice@example.com', true],
  ['alice@example.com', 'alice@EXAMPLE.com', true],
  ['alice@example.com', 'Alice@example.com', false],
  ['*@example.com', 'bob@Example.Com', true],
  ['*@example.com', 'bob@evil.com@example.com', false],
  ['*@example.com', '@example.com', false],
  ['alice@*.example.com', 'alice@mail.example.com', true],
  ['*', 'x@y', true],
  ['a.b@example.com', 'aXb@example.com', false],
]);

table('ip (address or CIDR, canonical comparison)', compileIpPattern, [
  ['10.1.2.3', '10.1.2.3', true],
  ['10.1.2.3', '10.1.2.4', false],
  ['10.0.0.0/8', '10.200.1.1', true],
  ['10.0.0.0/8', '11.0.0.1', false],
  ['10.0.0.0/8', '::ffff:10.1.2.3', true],
  ['fd00::/8', 'fd12:3456::1', true],
  ['fd00::/8', 'fe80::1', false],
  ['FD00:0:0::1', 'fd00::1', true],
  ['fd00::1', 'fd00::2', false],
  ['0.0.0.0/0', '192.168.1.1', true],
  ['::/0', '2001:db8::1', true],
  ['10.0.0.0/8', 'not-an-ip', false],
]);

t.test('refused patterns', async (t) => {
  const cases: readonly [string, (p: string) => ValueMatcher, string, RegExp][] = [
    ['spiffe without scheme', compileSpiffePattern, 'example.org/ns/a', /must start with "spiffe:\/\/"/],
    ['spiffe with https scheme', compileSpiffePattern, 'https://example.org/ns/a', /spiffe:\/\//],
    ['spiffe empty trust domain', compileSpiffePattern, 'spiffe:///ns/a', /trust domain/],
    ['spiffe upper-case trust domain', compileSpiffePattern, 'spiffe://Example.org/a', /lower-case/],
    ['spiffe ** in trust domain', compileSpiffePattern, 'spiffe://**/a', /"\*\*"|lower-case/],
    ['spiffe ** in trust domain label', compileSpiffePattern, 'spiffe://**.org/a', /trust domain/],
    ['a**b', compileSpiffePattern, 'spiffe://example.org/a**b', /whole segment/],
    ['**b', compileSpiffePattern, 'spiffe://example.org/x/**b', /whole segment/],
    ['***', compileSpiffePattern, 'spiffe://example.org/***', /\*\*\*/],
    ['uri ** in authority', compileUriPattern, 'https://**.example.com/x', /authority/],
    ['uri * in scheme', compileUriPattern, 'http*://example.com/x', /scheme/],
    ['dns with slash', compileDnsPattern, 'example.com/x', /DNS name/],
    ['dns empty label', compileDnsPattern, 'a..example.com', /DNS name/],
    ['dns a**b', compileDnsPattern, 'a**b.example.com', /whole segment/],
    ['dn a**b', compileDnValuePattern, 'a**b', /whole value/],
    ['email without @', compileEmailPattern, 'example.com', /local@domain/],
    ['email with two @', compileEmailPattern, 'a@b@example.com', /local@domain/],
    ['email **', compileEmailPattern, '**@example.com', /whole email/],
    ['ip garbage', compileIpPattern, 'ten.0.0.1', /not an IP/],
    ['ip prefix too long', compileIpPattern, '10.0.0.0/33', /0-32/],
    ['ipv6 prefix too long', compileIpPattern, 'fd00::/129', /0-128/],
    ['ip host bits', compileIpPattern, '10.1.2.3/8', /host bits/],
    ['ipv6 host bits', compileIpPattern, 'fd00::1/8', /host bits/],
    ['ip zone', compileIpPattern, 'fe80::1%eth0', /zone/],
    ['ip double slash', compileIpPattern, '10.0.0.0/8/8', /CIDR/],
  ];
  for (const [name, compile, pattern, message] of cases) {
    t.throws(() => compile(pattern), { name: 'PatternError', message }, name);
  }
  t.ok(new PatternError('x') instanceof Error);
});
