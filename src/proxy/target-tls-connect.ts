/**
 * The gateway's own TLS connection to one upstream target (sockets), for the clients that do not
 * go through an undici Pool: HTTP/2 sessions (http2-upstream-client.ts) and WebSocket tunnels
 * (upstream-tunnel.ts). Verified like the pools' connections: the upstream's shared secure
 * context, its servername, its identity check (names, pins, revocation), and no session cache, so
 * every connection is a full handshake whose certificate is checked.
 */
import { connect, type TLSSocket } from 'node:tls';
import type { TargetPoolSettings } from './upstream-target.js';

export function connectTarget(origin: URL, s: TargetPoolSettings, alpn: readonly string[]): TLSSocket {
  return connect({
    host: origin.hostname.replace(/^\[|\]$/g, ''),
    port: Number(origin.port || 443),
    servername: s.servername,
    secureContext: s.secureContext,
    rejectUnauthorized: true,
    checkServerIdentity: s.checkServerIdentity,
    ALPNProtocols: [...alpn],
  });
}
