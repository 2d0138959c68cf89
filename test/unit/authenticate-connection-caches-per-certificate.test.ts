// The connection authenticator caches what depends on the certificate alone (identity, chain,
// usage and depth checks), by SHA-256 fingerprint, for certificates the trust bundle completes.
// What depends on the connection is never taken from that cache: OpenSSL's verdict on this
// handshake (socket.authorized), session resumption, and revocation, which is judged per socket
// against the index in force. Sockets here are stand-ins that expose exactly what the
// authenticator reads; the certificates are real.
import 'reflect-metadata';
import { X509Certificate } from 'node:crypto';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { ConnectionAuthenticator } from '../../src/identity/authenticate-connection.js';
import { createIntermediateCa, createRootCa, issueLeaf, type Issued } from '../../src/pki/dev-pki.js';

function socketFor(cert: Issued, opts: { authorized?: boolean; error?: string; resumed?: boolean; chain?: boolean } = {}) {
  const x = new X509Certificate(cert.der);
  const calls = { summary: 0, detailed: 0 };
  const summary = { raw: cert.der, fingerprint256: x.fingerprint256, serialNumber: x.serialNumber, subject: { CN: 'c' } };
  const socket = {
    authorized: opts.authorized ?? true,
    authorizationError: opts.error,
    getPeerCertificate(detailed: boolean) {
      if (detailed) calls.detailed++;
      else calls.summary++;
      return summary;
    },
    getPeerX509Certificate() {
      throw new Error('not used: parsed from the summary DER instead');
    },
    isSessionReused: () => opts.resumed ?? false,
  };
  return { socket: socket as unknown as TLSSocket, calls };
}

t.test('per-certificate verdicts are shared; per-connection facts are not', async (t) => {
  const root = await createRootCa({ subject: { CN: 'Root' } });
  const inter = await createIntermediateCa(root, { subject: { CN: 'Inter' } });
  const billing = await issueLeaf(inter, { subject: { CN: 'billing' }, usage: 'client' });
  const server = await issueLeaf(inter, { subject: { CN: 'server-only' }, usage: 'server' });
  const auth = new ConnectionAuthenticator({ verifyDepth: 3, now: Date.now, trust: [root.der, inter.der].map((d) => new X509Certificate(d)), revocation: null });

  const a = socketFor(billing);
  const b = socketFor(billing, { resumed: true });
  const va = auth.verdict(a.socket);
  const vb = auth.verdict(b.socket);
  t.ok(va.ok && vb.ok, 'both connections admitted');
  if (!va.ok || !vb.ok) return;
  t.equal(va.identity, vb.identity, 'one identity object for one certificate');
  t.equal(va.chainDepth, 2);
  t.equal(va.resumed, false, 'resumption is read per connection');
  t.equal(vb.resumed, true);
  t.equal(a.calls.detailed + b.calls.detailed, 0, 'the bundle completes the chain: no detailed chain requested');

  // A later connection with the same certificate that OpenSSL did not authorize is refused: the
  // cache never stands in for this handshake's verification.
  const c = socketFor(billing, { authorized: false, error: 'CERT_HAS_EXPIRED' });
  t.match(auth.verdict(c.socket), { ok: false, code: 'GW_ERR_CLIENT_CERT_EXPIRED', reason: 'CERT_HAS_EXPIRED' });

  // Refusals that depend on the certificate are cached like admissions, and stay refusals.
  const s1 = auth.verdict(socketFor(server).socket);
  const s2 = auth.verdict(socketFor(server).socket);
  t.match(s1, { ok: false, code: 'GW_ERR_CLIENT_CERT_USAGE' });
  t.same(s2, s1, 'the same refusal for the same certificate');

  // When the bundle cannot complete the chain (root only; the client sends its intermediate), the
  // chain depends on what each client presents: nothing is cached and each connection asks.
  const rootOnly = new ConnectionAuthenticator({ verifyDepth: 3, now: Date.now, trust: [new X509Certificate(root.der)], revocation: null });
  const d1 = socketFor(billing);
  const d2 = socketFor(billing);
  rootOnly.verdict(d1.socket);
  rootOnly.verdict(d2.socket);
  t.equal(d1.calls.detailed, 1, 'first connection asks for the presented chain');
  t.equal(d2.calls.detailed, 1, 'so does the second: presented chains are not cached');
});
