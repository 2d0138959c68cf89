/**
 * The admin listener over mTLS (admin.tls + admin.allow): loads its certificate, key and client CA
 * as startup loads the data plane's (same checks, same error codes naming the key), and decides
 * who may use the protected endpoints with the policy engine's own selectors. OpenSSL verifies
 * the client chain against admin.clientCA; the identity is read from the certificate with the one
 * identity reader. /healthz and /readyz stay open: Kubernetes' HTTPS probes present no certificate.
 */
import type { TLSSocket } from 'node:tls';
import type { GatewayConfig } from '../config/schema.js';
import { identityFromDer } from '../identity/identity-from-certificate.js';
import { loadKeyPair, loadTrustBundle, readFileFromDisk, type ReadFileFn } from '../pki/tls-material.js';
import { compilePolicy } from '../policy/compile-policy.js';
import { decide } from '../policy/decide.js';
import type { AdminTls } from './admin-server.js';

export async function loadAdminTls(config: GatewayConfig, read: ReadFileFn = readFileFromDisk, now = new Date()): Promise<AdminTls | null> {
  const tls = config.admin.tls;
  const allow = config.admin.allow;
  if (tls === undefined || allow === undefined) return null;
  const pair = await loadKeyPair(read, { cert: 'admin.tls.cert', key: 'admin.tls.key' }, { cert: tls.cert, key: tls.key }, now);
  const ca = await loadTrustBundle(read, 'admin.tls.clientCA', tls.clientCA);
  // One route that covers everything, with admin.allow as its allow list: deny by default.
  const policy = compilePolicy([{ name: 'admin', match: { pathPrefix: '/' }, upstream: 'admin', allow, deny: [] }]);
  return {
    cert: pair.pem,
    key: pair.keyPem,
    ca: [...ca.pems],
    authorize(socket: TLSSocket) {
      if (!socket.authorized) return { ok: false, status: 401, reason: socket.getPeerCertificate()?.raw ? `client certificate refused: ${String(socket.authorizationError)}` : 'a client certificate is required' };
      let allowed = false;
      try {
        const identity = identityFromDer(socket.getPeerCertificate().raw);
        allowed = decide(policy, identity, { method: 'GET', host: null, path: '/' }).kind === 'allow';
      } catch {
        return { ok: false, status: 401, reason: 'the client certificate could not be read' };
      }
      return allowed ? { ok: true } : { ok: false, status: 403, reason: 'the client identity is not in admin.allow' };
    },
  };
}
