/**
 * The gateway's own TLS connection to one upstream target, for the clients that do not go through
 * an undici Pool: HTTP/2 sessions (http2-upstream-client.ts) and WebSocket tunnels
 * (upstream-tunnel.ts). Opened by the target's connector of the pool generation in force
 * (resuming-target-connect.ts), so they share its session cache and are verified like the pools'
 * connections, resumed ones included; settings without one (a client built directly) get a
 * connector of their own.
 */
import type { TLSSocket } from 'node:tls';
import { TargetConnector } from './resuming-target-connect.js';
import type { TargetPoolSettings } from './upstream-target.js';

export function connectTarget(origin: URL, s: TargetPoolSettings, alpn: readonly string[]): TLSSocket {
  return (s.connector ?? new TargetConnector(s)).open(origin, alpn);
}
