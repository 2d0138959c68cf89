/**
 * All PKI material one configuration names, loaded and checked together: used by startup and by
 * `config check`, so that the check finds exactly what startup would refuse.
 */
import type { GatewayConfig } from '../config/schema.js';
import { loadCrlPems, loadKeyPair, loadTrustBundle, type KeyPairMaterial, type ReadFileFn, type TrustBundle } from './tls-material.js';

export interface UpstreamTlsMaterial {
  readonly client: KeyPairMaterial;
  readonly ca: TrustBundle;
  readonly crl: readonly string[];
}

export interface GatewayMaterial {
  readonly server: KeyPairMaterial;
  readonly clientCA: TrustBundle;
  /** One PEM per CRL. */
  readonly crl: readonly string[];
  readonly upstreams: ReadonlyMap<string, UpstreamTlsMaterial>;
}

export async function loadGatewayMaterial(config: GatewayConfig, read: ReadFileFn, now: Date): Promise<GatewayMaterial> {
  const server = await loadKeyPair(read, { cert: 'tls.cert', key: 'tls.key' }, { cert: config.tls.cert, key: config.tls.key }, now);
  const clientCA = await loadTrustBundle(read, 'tls.clientCA', config.tls.clientCA);
  const crl = config.tls.crl ? await loadCrlPems(read, 'tls.crl', config.tls.crl) : [];
  const upstreams = new Map<string, UpstreamTlsMaterial>();
  for (const [name, u] of Object.entries(config.upstreams)) {
    const key = `upstreams.${name}.tls`;
    const client = await loadKeyPair(read, { cert: `${key}.cert`, key: `${key}.key` }, { cert: u.tls.cert, key: u.tls.key }, now);
    const ca = await loadTrustBundle(read, `${key}.ca`, u.tls.ca);
    const ucrl = u.tls.crl ? await loadCrlPems(read, `${key}.crl`, u.tls.crl) : [];
    upstreams.set(name, { client, ca, crl: ucrl });
  }
  return { server, clientCA, crl, upstreams };
}
