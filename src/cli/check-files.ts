/**
 * The file half of `config check`: loads every certificate, key, CA bundle and CRL the config
 * names, exactly as startup does, and returns advisory notes about things that load but will
 * probably not do what the user wants.
 */
import { X509Certificate } from 'node:crypto';
import type { GatewayConfig } from '../config/schema.js';
import { compilePolicy } from '../policy/compile-policy.js';
import { loadGatewayMaterial } from '../pki/gateway-material.js';
import { readFileFromDisk } from '../pki/tls-material.js';

const DAY = 86_400_000;

export async function checkConfigFiles(config: GatewayConfig, now: Date = new Date()): Promise<string[]> {
  compilePolicy(config.routes);
  const material = await loadGatewayMaterial(config, readFileFromDisk, now);
  const notes: string[] = [];
  const soon = (cert: X509Certificate, key: string) => {
    const left = new Date(cert.validTo).getTime() - now.getTime();
    if (left < 14 * DAY) notes.push(`${key}: certificate expires in ${Math.max(0, Math.floor(left / DAY))} day(s) (${new Date(cert.validTo).toISOString()})`);
  };
  soon(material.server.leaf, 'tls.cert');
  for (const [name, u] of material.upstreams) soon(u.client.leaf, `upstreams.${name}.tls.cert`);
  if (config.routes.length === 0) notes.push('routes: no routes; every request will get 404');
  config.routes.forEach((r, i) => {
    if (r.allow.length === 0) notes.push(`routes[${i}].allow: empty; route "${r.name}" admits nobody`);
  });
  return notes;
}
