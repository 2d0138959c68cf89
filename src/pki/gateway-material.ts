/**
 * All certificate and key material one configuration names, loaded and checked together: used by
 * startup and by `config check`, so that the check finds exactly what startup would refuse. CRLs
 * are the revocation stores' business (src/revocation), not OpenSSL's.
 */
import type { GatewayConfig } from '../config/schema.js';
import { GatewayError, isGatewayError } from '../errors/registry.js';
import { loadKeyPair, loadTrustBundle, type KeyPairMaterial, type ReadFileFn, type TrustBundle } from './tls-material.js';

/** TLS session ticket keys are 48 bytes in Node (16 name, 16 HMAC, 16 AES). */
export const TICKET_KEY_BYTES = 48;

export interface UpstreamTlsMaterial {
  readonly client: KeyPairMaterial;
  readonly ca: TrustBundle;
}

export interface GatewayMaterial {
  readonly server: KeyPairMaterial;
  readonly clientCA: TrustBundle;
  readonly upstreams: ReadonlyMap<string, UpstreamTlsMaterial>;
  /** tls.sessionTickets.keyFile's 48 bytes, or null when the key is not set. */
  readonly ticketKeys: Buffer | null;
}

/** Reads tls.sessionTickets.keyFile: exactly 48 bytes, or a GW_ERR_TLS_MATERIAL naming the key. */
export async function loadTicketKeys(read: ReadFileFn, file: string): Promise<Buffer> {
  const key = 'tls.sessionTickets.keyFile';
  let bytes: Buffer;
  try {
    bytes = await read(file, { key, maxBytes: 4096 });
  } catch (err) {
    if (isGatewayError(err)) throw err;
    throw new GatewayError('GW_ERR_TLS_MATERIAL', { message: `${key}: cannot read file: ${(err as NodeJS.ErrnoException).code ?? String(err)} (${file})`, detail: { key, file }, cause: err });
  }
  if (bytes.length !== TICKET_KEY_BYTES) {
    throw new GatewayError('GW_ERR_TLS_MATERIAL', {
      message: `${key}: must hold exactly ${TICKET_KEY_BYTES} bytes, has ${bytes.length} (write one with \`mtls-gateway pki ticket-key --out FILE\`) (${file})`,
      detail: { key, file },
    });
  }
  return bytes;
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
  const ticketFile = config.tls.sessionTickets.keyFile;
  const ticketKeys = ticketFile === undefined ? null : await loadTicketKeys(read, ticketFile);
  return { server, clientCA, upstreams, ticketKeys };
}
