/**
 * The gateway's own TLS connection to one upstream target (sockets), for the clients that do not
 * go through an undici Pool: HTTP/2 sessions (http2-upstream-client.ts) and WebSocket tunnels
 * (upstream-tunnel.ts). Verified like the pools' connections: the upstream's shared secure
 * context, its servername, its identity check (names, pins, revocation), and no session cache, so
 * every connection is a full handshake whose certificate is checked. With upstream OCSP on, the
 * socket asks for a staple and is held back until upstream-ocsp.ts has judged it.
 */
import { connect, type TLSSocket } from 'node:tls';
import { holdUntilOcspVerdict } from './upstream-ocsp.js';
import type { TargetPoolSettings } from './upstream-target.js';

export function connectTarget(origin: URL, s: TargetPoolSettings, alpn: readonly string[]): TLSSocket {
  const socket = connect({
    host: origin.hostname.replace(/^\[|\]$/g, ''),
    port: Number(origin.port || 443),
    servername: s.servername,
    secureContext: s.secureContext,
    rejectUnauthorized: true,
    checkServerIdentity: s.checkServerIdentity,
    ALPNProtocols: [...alpn],
    ...(s.ocsp ? { requestOCSP: true } : {}),
  });
  return s.ocsp ? holdUntilOcspVerdict(socket, s.ocsp) : socket;
}
