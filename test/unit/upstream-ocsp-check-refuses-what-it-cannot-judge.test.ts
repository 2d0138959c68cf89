// Pins a security decision: the upstream OCSP check (src/proxy/upstream-ocsp.ts) fails closed
// whenever it cannot judge a connection: the TLS layer never reported the staple, the peer
// certificate is missing or cannot be linked to upstreams.X.tls.ca, the check itself throws, or a
// lookup never settles. Each is a refusal
// with GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN, never an admission; onUnavailable: allow is the
// only way through a failed lookup, and it is logged as fail-open.
import { EventEmitter } from 'node:events';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import pino from 'pino';
import t from 'tap';
import { createDevPki, createRootCa, issueLeaf } from '../../src/pki/dev-pki.js';
import { UpstreamOcspCheck } from '../../src/proxy/upstream-ocsp.js';
import type { OcspLookupFn } from '../../src/revocation/ocsp-http-lookup.js';
import { OcspStore } from '../../src/revocation/ocsp-store.js';
import { issueLeafWithOcsp } from '../helpers/ocsp-responder.js';

type FakeSocket = EventEmitter & { getPeerCertificate(detailed?: boolean): unknown; destroy(): void };

function fakeSocket(peer: (detailed: boolean) => unknown): TLSSocket {
  const s = new EventEmitter() as FakeSocket;
  s.getPeerCertificate = (detailed = false) => peer(detailed);
  s.destroy = () => undefined;
  return s as unknown as TLSSocket;
}

async function setup(opts: { onUnavailable?: 'deny' | 'allow'; lookup?: OcspLookupFn } = {}) {
  const pki = await createDevPki();
  const trust = [new X509Certificate(pki.intermediate.certPem), new X509Certificate(pki.root.certPem)];
  const records: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void records.push(JSON.parse(line) as Record<string, unknown>) });
  const lookup: OcspLookupFn = opts.lookup ?? (async () => ({ ok: false, reason: 'down' }));
  const store = new OcspStore({ domain: 'upstream orders', timeoutMs: 500, maxBytes: 65_536, cacheSize: 16, nonce: false, responderFor: () => 'http://127.0.0.1:9/', lookup, logger: pino({ level: 'silent' }), now: Date.now });
  const check = new UpstreamOcspCheck({ name: 'orders', store, mode: 'prefer', requireStapled: false, onUnavailable: opts.onUnavailable ?? 'deny', trust, now: Date.now, logger });
  const leaf = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: ['http://127.0.0.1:9/'], cn: 'orders.internal', usage: 'server', dns: ['orders.internal'] });
  const raw = new X509Certificate(leaf.certPem).raw;
  return { pki, store, check, raw, records };
}

t.test('what the check cannot judge is refused', async (t) => {
  const { check, raw, store } = await setup();
  t.teardown(() => store.stop());
  const unknown = { code: 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN' };
  t.match(await check.judge(fakeSocket(() => ({ raw })), undefined), { ...unknown, message: /did not report/ }, 'no OCSPResponse event seen');
  t.match(await check.judge(fakeSocket(() => ({})), null), { ...unknown, message: /could not be linked/ }, 'no peer certificate');
  t.match(
    await check.judge(
      fakeSocket(() => {
        throw new Error('socket gone');
      }),
      null,
    ),
    { ...unknown, message: /the check failed: socket gone/ },
    'a throw inside the check',
  );
  const foreignRoot = await createRootCa({ name: 'foreign', subject: { CN: 'Foreign Root' } });
  const foreign = await issueLeaf(foreignRoot, { name: 'foreign-leaf', subject: { CN: 'orders.internal' }, usage: 'server' });
  const foreignRaw = new X509Certificate(foreign.certPem).raw;
  t.match(await check.judge(fakeSocket((detailed) => (detailed ? { raw: foreignRaw, fingerprint256: 'x', issuerCertificate: null } : { raw: foreignRaw })), null), { ...unknown, message: /could not be linked/ }, 'a chain outside upstreams.X.tls.ca');
  t.match(await check.judge(fakeSocket(() => ({ raw })), null), { ...unknown, message: /no usable answer.*down/ }, 'a failed lookup under deny');
});

t.test('a lookup that never settles is unavailable after one wait', async (t) => {
  const { check, raw, store } = await setup({
    lookup: async () => {
      // The store is stopped while this runs: the answer is never stored, so it never settles.
      store.stop();
      return { ok: false, reason: 'late' };
    },
  });
  t.match(await check.judge(fakeSocket(() => ({ raw })), null), { code: 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN', message: /did not settle/ });
});

t.test('onUnavailable: allow admits a failed lookup and logs it as fail-open', async (t) => {
  const { check, raw, store, records } = await setup({ onUnavailable: 'allow' });
  t.teardown(() => store.stop());
  t.equal(await check.judge(fakeSocket(() => ({ raw })), null), null);
  t.match(records, [{ event: 'upstream-ocsp-fail-open', upstream: 'orders', reason: /onUnavailable: allow/ }]);
});
