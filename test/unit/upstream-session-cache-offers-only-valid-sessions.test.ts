// The upstream TLS session cache (pure): newest session first, only under the server name it was
// verified for, never one whose remembered chain is outside its validity window (dropped when
// seen), bounded in count and size, and a refused chain's sessions all forgotten together.
import type { DetailedPeerCertificate } from 'node:tls';
import t from 'tap';
import { MAX_SESSION_BYTES, MAX_SESSIONS, outsideValidity, UpstreamSessionCache, verifiedPeer } from '../../src/proxy/upstream-session-cache.js';

const HOUR = 3_600_000;
const NOW = Date.parse('2026-06-01T12:00:00Z');

/** A chain of Node's shape: leaf -> intermediate -> root (pointing at itself). */
function chain(leaf: [number, number], intermediate: [number, number]): DetailedPeerCertificate {
  const root = { raw: Buffer.from('root'), valid_from: new Date(NOW - 1000 * HOUR).toUTCString(), valid_to: new Date(NOW + 1000 * HOUR).toUTCString() } as DetailedPeerCertificate;
  (root as { issuerCertificate: DetailedPeerCertificate }).issuerCertificate = root;
  const mid = { raw: Buffer.from('mid'), valid_from: new Date(intermediate[0]).toUTCString(), valid_to: new Date(intermediate[1]).toUTCString(), issuerCertificate: root } as DetailedPeerCertificate;
  return { raw: Buffer.from('leaf'), valid_from: new Date(leaf[0]).toUTCString(), valid_to: new Date(leaf[1]).toUTCString(), issuerCertificate: mid } as DetailedPeerCertificate;
}

const s = (n: number) => Buffer.from(`session-${n}`);

t.test('the validity window is the chain\'s narrowest', async (t) => {
  const p = verifiedPeer('orders.internal', chain([NOW - HOUR, NOW + 10 * HOUR], [NOW - 2 * HOUR, NOW + 2 * HOUR]))!;
  t.equal(outsideValidity(p, NOW), null);
  t.match(outsideValidity(p, NOW + 3 * HOUR), /expired/, 'the intermediate expires first');
  t.match(outsideValidity(p, NOW - 90 * 60_000), /not valid before/);
  t.equal(verifiedPeer('x', { ...chain([NOW, NOW + HOUR], [NOW, NOW + HOUR]), valid_to: 'garbage' }), null, 'unreadable dates: never kept');
  const loop = chain([NOW - HOUR, NOW + HOUR], [NOW - HOUR, NOW + HOUR]);
  (loop.issuerCertificate as { issuerCertificate: DetailedPeerCertificate }).issuerCertificate = loop;
  t.ok(verifiedPeer('x', loop), 'a chain that loops is walked a bounded number of steps');
});

t.test('newest first, by server name, expired ones dropped', async (t) => {
  const cache = new UpstreamSessionCache();
  const valid = verifiedPeer('orders.internal', chain([NOW - HOUR, NOW + HOUR], [NOW - HOUR, NOW + 10 * HOUR]))!;
  const later = verifiedPeer('orders.internal', chain([NOW - HOUR, NOW + 5 * HOUR], [NOW - HOUR, NOW + 10 * HOUR]))!;
  const other = verifiedPeer('payments.internal', chain([NOW - HOUR, NOW + 5 * HOUR], [NOW - HOUR, NOW + 10 * HOUR]))!;
  cache.remember(s(1), later);
  cache.remember(s(2), valid);
  cache.remember(s(3), other);
  t.same(cache.offer('orders.internal', NOW)?.session, s(2), 'the newest for that name');
  t.equal(cache.offer('unknown.internal', NOW), undefined);
  t.same(cache.offer('orders.internal', NOW + 2 * HOUR)?.session, s(1), 'an expired one is skipped');
  t.equal(cache.peerOf(s(2)), undefined, '...and dropped');
  t.equal(cache.size, 2);
  cache.remember(s(4), later);
  cache.forgetPeer(later);
  t.equal(cache.size, 1, 'every session of a refused chain goes');
  t.equal(cache.peerOf(s(3)), other);
  cache.forget(s(3));
  t.equal(cache.size, 0);
});

t.test('bounded in count and size; remembering again moves a session to the front', async (t) => {
  const cache = new UpstreamSessionCache();
  const p = verifiedPeer('orders.internal', chain([NOW - HOUR, NOW + HOUR], [NOW - HOUR, NOW + HOUR]))!;
  for (let i = 0; i < 3 * MAX_SESSIONS; i++) cache.remember(s(i), p);
  t.equal(cache.size, MAX_SESSIONS);
  t.equal(cache.peerOf(s(0)), undefined, 'the oldest are evicted');
  cache.remember(s(3 * MAX_SESSIONS - MAX_SESSIONS), p);
  t.same(cache.offer('orders.internal', NOW)?.session, s(3 * MAX_SESSIONS - MAX_SESSIONS));
  cache.remember(Buffer.alloc(MAX_SESSION_BYTES + 1), p);
  cache.remember(Buffer.alloc(0), p);
  t.equal(cache.size, MAX_SESSIONS, 'oversized and empty sessions are not kept');
  t.equal(new UpstreamSessionCache(0).size, 0);
  const one = new UpstreamSessionCache(0);
  one.remember(s(1), p);
  one.remember(s(2), p);
  t.equal(one.size, 1, 'a bound below one still keeps one');
});
