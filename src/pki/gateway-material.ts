/**
 * All certificate and key material one configuration names, loaded and checked together: used by
 * startup and by `config check`, so that the check finds exactly what startup would refuse. CRLs
 * are the revocation stores' business (src/revocation), not OpenSSL's.
 */
import type { GatewayConfig } from '../config/schema.js';
import { loadKeyPair, loadTrustBundle, type KeyPairMaterial, type ReadFileFn, type TrustBundle } from './tls-material.js';

export interface UpstreamTlsMaterial {
  readonly client: KeyPairMaterial;
  readonly ca: TrustBundle;
}

export interface GatewayMaterial {
  readonly server: KeyPairMaterial;
  readonly clientCA: TrustBundle;
  readonly upstreams: ReadonlyMap<string, UpstreamTlsMaterial>;
}

export async function loadGatewayMaterial(config: GatewayConfig, read: ReadFileFn, now: Date): Promise<GatewayMaterial> {
  const server = await loadKeyPair(read, { cert: 'tls.cert', key: 'tls.key' }, { cert: config.tls.cert, key: config.tls.key }, now);
  const clientCA = await loadTrustBundle(read, 'tls.clientCA', config.tls.clientCA);
  const upstreams = new Map<string, UpstreamTlsMaterial>();
  for (const [name, u] of Object.entries(config.upstreams)) {
    const key = `upstreams.${name}.tls`;
    const client = await loadKeyPair(read, { cert: `${key}.cert`, key: `${key}.key` }, { cert: u.tls.cert, key: u.tls.key }, now);
    const ca = await loadTrustBundle(read, `${key}.ca`, u.tls.ca);
    upstreams.set(name, { client, ca });
  }
  return { server, clientCA, upstreams };
}
