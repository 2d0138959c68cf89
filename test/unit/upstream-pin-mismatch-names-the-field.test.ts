/**
 * Upstream pinning (upstreams.<name>.tls.expect): every pinned field must match the upstream's
 * certificate, and a mismatch names the field that failed. Security: a pin that silently passed
 * for a missing field would let any certificate from the same CA stand in for the upstream.
 */
import t from 'tap';
import type { PeerIdentity } from '../../src/identity/peer-identity.js';
import { pinMismatch } from '../../src/proxy/upstream-verify.js';

const FP = 'ab'.repeat(32);
const orders: PeerIdentity = {
  subject: { attributes: [{ type: 'CN', value: 'orders' }], rfc4514: 'CN=orders' },
  issuer: { attributes: [{ type: 'CN', value: 'CA' }], rfc4514: 'CN=CA' },
  san: { dns: ['Orders.Internal'], uri: ['spiffe://example.org/ns/prod/sa/orders', 'https://orders.example.org/'], email: [], ip: [] },
  spiffe: { uri: 'spiffe://example.org/ns/prod/sa/orders', trustDomain: 'example.org', path: '/ns/prod/sa/orders' },
  serial: '01',
  fingerprint256: FP,
  notBefore: new Date(0),
  notAfter: new Date(0),
};
const noSpiffe: PeerIdentity = { ...orders, spiffe: null, san: { ...orders.san, uri: [] } };

t.test('a certificate matching every pinned field passes', async (t) => {
  t.equal(pinMismatch(orders, {}), null, 'nothing pinned');
  t.equal(
    pinMismatch(orders, { spiffe: 'spiffe://example.org/ns/prod/sa/orders', uri: 'https://orders.example.org/', dns: 'orders.internal', fingerprint: 'AB:'.repeat(31) + 'AB' }),
    null,
    'DNS compared case-insensitively, fingerprint in any spelling',
  );
});

t.test('each mismatch names its field', async (t) => {
  const rows: [PeerIdentity, Parameters<typeof pinMismatch>[1], RegExp][] = [
    [orders, { spiffe: 'spiffe://example.org/ns/prod/sa/billing' }, /^SPIFFE ID spiffe:\/\/example\.org\/ns\/prod\/sa\/orders is not spiffe:\/\/example\.org\/ns\/prod\/sa\/billing$/],
    [noSpiffe, { spiffe: 'spiffe://example.org/ns/prod/sa/orders' }, /^SPIFFE ID \(none\) is not /],
    [orders, { uri: 'https://billing.example.org/' }, /^no URI SAN https:\/\/billing\.example\.org\/$/],
    [orders, { uri: 'https://orders.example.org' }, /^no URI SAN /],
    [orders, { dns: 'billing.internal' }, /^no DNS SAN billing\.internal$/],
    [noSpiffe, { dns: 'orders.internal.' }, /^no DNS SAN /],
    [orders, { fingerprint: 'cd'.repeat(32) }, /^fingerprint ab(ab)+ is not the pinned one$/],
  ];
  for (const [identity, expect, reason] of rows) t.match(pinMismatch(identity, expect), reason, JSON.stringify(expect));
});

t.test('fields are checked in order; the first failure is reported', async (t) => {
  t.match(pinMismatch(orders, { spiffe: 'spiffe://example.org/x', dns: 'nope' }), /^SPIFFE ID/);
  t.match(pinMismatch(orders, { dns: 'nope', fingerprint: 'cd'.repeat(32) }), /^no DNS SAN/);
});
