/**
 * The file half of `config check`: loads every certificate, key, CA bundle and CRL the config
 * names, exactly as startup does, and returns advisory notes about things that load but will
 * probably not do what the user wants.
 */
import { X509Certificate } from 'node:crypto';
import type { GatewayConfig } from '../config/schema.js';
import { pino } from 'pino';
import { loadAdminTls } from '../admin/admin-tls.js';
import { compilePolicy } from '../policy/compile-policy.js';
import { loadGatewayMaterial } from '../pki/gateway-material.js';
import { readFileFromDisk } from '../pki/tls-material.js';
import { normalizeCrlSources } from '../revocation/crl-sources.js';
import { parseCrlFile } from '../revocation/parse-crl.js';
import { RevocationStore } from '../revocation/revocation-store.js';

const DAY = 86_400_000;

export async function checkConfigFiles(config: GatewayConfig, now: Date = new Date()): Promise<string[]> {
  compilePolicy(config.routes, { caseSensitive: config.server.paths.caseSensitive });
  const material = await loadGatewayMaterial(config, readFileFromDisk, now);
  await loadAdminTls(config, readFileFromDisk, now);
  const notes: string[] = [];
  const soon = (cert: X509Certificate, key: string) => {
    const left = new Date(cert.validTo).getTime() - now.getTime();
    if (left < 14 * DAY) notes.push(`${key}: certificate expires in ${Math.max(0, Math.floor(left / DAY))} day(s) (${new Date(cert.validTo).toISOString()})`);
  };
  soon(material.server.leaf, 'tls.cert');
  for (const [name, u] of material.upstreams) soon(u.client.leaf, `upstreams.${name}.tls.cert`);
  // CRLs are loaded and validated exactly as startup does (signature, issuer, dates).
  const domains = [
    { domain: 'clients', key: 'tls.crl', sources: config.tls.crl, rev: config.tls.revocation, trust: material.clientCA.certs },
    ...Object.entries(config.upstreams).map(([name, u]) => ({ domain: `upstream ${name}`, key: `upstreams.${name}.tls.crl`, sources: u.tls.crl, rev: u.tls.revocation, trust: material.upstreams.get(name)!.ca.certs })),
  ];
  for (const d of domains) {
    if (!d.sources || d.sources.length === 0) {
      notes.push(`${d.key}: not set; ${d.domain === 'clients' ? 'client certificates' : `the ${d.domain} certificate`} will not be checked for revocation`);
      continue;
    }
    const store = new RevocationStore({
      domain: d.domain,
      sources: normalizeCrlSources(d.sources, d.key),
      trust: d.trust,
      logger: pino({ level: 'silent' }),
      now: () => now.getTime(),
      parse: async (b) => parseCrlFile(b),
      warnBeforeMs: d.rev.warnBefore,
      pollIntervalMs: d.rev.pollInterval,
    });
    try {
      await store.loadInitial();
      for (const c of store.describe()) {
        if (c.stale) notes.push(`${d.key}: CRL of ${c.issuer} is past its nextUpdate (${c.nextUpdate}); stale: ${d.rev.stale}`);
      }
      const haveCrl = new Set(store.describe().map((c) => c.issuerKey));
      if (d.rev.missing === 'deny' && haveCrl.size === 0) notes.push(`${d.key}: no CRL loaded; with missing: deny every certificate in scope will be refused`);
    } finally {
      await store.stop();
    }
  }
  if (config.routes.length === 0) notes.push('routes: no routes; every request will get 404');
  config.routes.forEach((r, i) => {
    if (r.allow.length === 0) notes.push(`routes[${i}].allow: empty; route "${r.name}" admits nobody`);
  });
  return notes;
}
