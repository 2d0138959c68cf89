/**
 * readiness(): pure, from a snapshot and a few facts. Every reason /readyz can give is produced by
 * the case that should produce it, and only by it: no snapshot, listener down, draining, a server
 * certificate expired or not yet valid, a CRL domain with no CRL under `missing: deny` (not under
 * `allow`), a stale CRL under `stale: deny`, inside and past a grace, and never under `allow`;
 * upstream domains are judged by their own settings.
 */
import t from 'tap';
import type { RevocationConfig } from '../../src/config/schema.js';
import type { RuntimeSnapshot } from '../../src/runtime/snapshot.js';
import { readiness } from '../../src/runtime/state-view.js';

const NOW = Date.parse('2026-12-01T12:00:00Z');
const HOUR = 3_600_000;

interface Crl {
  issuer: string;
  issuerDn: string;
  nextUpdate: string | null;
}

function snapshot(opts: { validFrom?: number; validTo?: number; clients?: { rev: Partial<RevocationConfig>; crls: Crl[] }; upstream?: { rev: Partial<RevocationConfig>; crls: Crl[] } }) {
  const rev = (r: Partial<RevocationConfig> = {}): RevocationConfig => ({ scope: 'chain', missing: 'deny', stale: 'deny', warnBefore: 0, pollInterval: 1000, ...r }) as RevocationConfig;
  const byDomain = new Map<string, { describe(): Crl[] }>();
  if (opts.clients) byDomain.set('clients', { describe: () => opts.clients!.crls });
  if (opts.upstream) byDomain.set('upstream orders', { describe: () => opts.upstream!.crls });
  return {
    material: { server: { leaf: { validFrom: new Date(opts.validFrom ?? NOW - HOUR).toUTCString(), validTo: new Date(opts.validTo ?? NOW + 100 * HOUR).toUTCString() } } },
    config: { tls: { revocation: rev(opts.clients?.rev) }, upstreams: { orders: { tls: { revocation: rev(opts.upstream?.rev) } } } },
    revocation: { byDomain },
  } as unknown as RuntimeSnapshot;
}
const up = { listening: true, draining: false, now: NOW };
const crl = (nextUpdate: number | null): Crl => ({ issuer: 'CN=CA', issuerDn: 'CN=CA', nextUpdate: nextUpdate === null ? null : new Date(nextUpdate).toISOString() });

t.test('a healthy snapshot is ready', async (t) => {
  t.same(readiness(snapshot({ clients: { rev: {}, crls: [crl(NOW + HOUR)] } }), up), { ready: true, reasons: [] });
  t.same(readiness(snapshot({ clients: { rev: {}, crls: [crl(null)] } }), up), { ready: true, reasons: [] }, 'a CRL without nextUpdate never goes stale');
});

t.test('each fact and each certificate problem is its own reason', async (t) => {
  t.same(readiness(null, up).reasons, ['snapshot: no configuration loaded']);
  t.same(readiness(null, { ...up, listening: false, draining: true }).reasons, ['draining: the gateway is shutting down', 'listener: not accepting connections', 'snapshot: no configuration loaded']);
  t.match(readiness(snapshot({ validTo: NOW - 1000 }), up).reasons, [/^tls\.cert: the server certificate expired at /]);
  t.match(readiness(snapshot({ validFrom: NOW + HOUR }), up).reasons, [/^tls\.cert: the server certificate is not valid before /]);
});

t.test('CRLs: missing and stale, by policy and by domain', async (t) => {
  t.match(readiness(snapshot({ clients: { rev: {}, crls: [] } }), up).reasons, [/^crl clients: no CRL loaded and missing is "deny"/]);
  t.same(readiness(snapshot({ clients: { rev: { missing: 'allow' }, crls: [] } }), up).reasons, [], 'missing: allow admits without a CRL, so it is ready');
  t.match(readiness(snapshot({ clients: { rev: {}, crls: [crl(NOW - 1)] } }), up).reasons, [/^crl clients: the CRL of CN=CA is past its nextUpdate .* stale is "deny"$/]);
  t.same(readiness(snapshot({ clients: { rev: { stale: 'allow' }, crls: [crl(NOW - HOUR)] } }), up).reasons, [], 'stale: allow keeps honouring it');
  t.same(readiness(snapshot({ clients: { rev: { stale: 'grace', grace: 2 * HOUR }, crls: [crl(NOW - HOUR)] } }), up).reasons, [], 'inside the grace');
  t.match(readiness(snapshot({ clients: { rev: { stale: 'grace', grace: HOUR / 2 }, crls: [crl(NOW - HOUR)] } }), up).reasons, [/and its grace of 1800000 ms$/], 'past the grace');
  t.match(readiness(snapshot({ upstream: { rev: {}, crls: [crl(NOW - 1)] } }), up).reasons, [/^crl upstream orders: /], 'an upstream domain, by its own settings');
  t.same(readiness(snapshot({ upstream: { rev: { stale: 'allow' }, crls: [crl(NOW - 1)] }, clients: { rev: {}, crls: [crl(NOW + HOUR)] } }), up).reasons, []);
});
