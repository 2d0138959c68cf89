/**
 * Route forwarding: what a route changes about a request once the policy admitted it. The path
 * rewrite (applied to the normalized path the policy judged, never before), the Host sent
 * upstream, the route's response timeout, its rate limit (a token bucket per client identity) and
 * which identity headers it sends (forwardClientCert, resolved once). Compiled once per snapshot;
 * a route's rate limiter is kept across reloads while its settings stay the same, so a reload does
 * not refill every bucket.
 */
import type { RouteConfig } from '../config/schema.js';
import type { PeerIdentity } from '../identity/peer-identity.js';
import { RateLimiter } from './rate-limiter.js';
import { compileRewrite, type PathRewrite } from './rewrite-path.js';

export type HostMode = 'upstream' | 'servername' | 'preserve';
export type RateLimitKey = 'spiffe' | 'subject' | 'fingerprint';

export interface RouteRateLimit {
  readonly key: RateLimitKey;
  readonly limiter: RateLimiter;
  /** The settings it was built from, to keep the limiter across reloads while they hold. */
  readonly signature: string;
}

/** Which identity headers a route sends upstream: forwardClientCert with the route's overrides. */
export interface IdentityHeaders {
  readonly xfcc: boolean;
  readonly clientCert: boolean;
  readonly clientCertChain: boolean;
}

/**
 * A WebSocket tunnel's idle timeout when the route sets none: Envoy's stream idle timeout (5 min).
 * Long enough for applications that ping every minute or so, short enough that tunnels whose
 * peers vanished without a FIN do not pile up for hours.
 */
export const DEFAULT_TUNNEL_IDLE_MS = 300_000;

export interface RouteForwarding {
  readonly rewrite: PathRewrite | null;
  /** The configured rewrite prefix, for logs and `policy explain`. */
  readonly rewritePrefix: string | null;
  readonly host: HostMode;
  readonly responseTimeout: number | undefined;
  /** WebSocket tunnels: closed after this long without a byte either way (routes[].timeouts.idle). */
  readonly tunnelIdleTimeout: number;
  readonly rateLimit: RouteRateLimit | null;
  readonly identityHeaders: IdentityHeaders;
}

/**
 * `identityHeaders`: the top-level forwardClientCert, which the route's own overrides field by
 * field. `previous`: the same route's forwarding in the snapshot in force, to keep its rate limiter.
 */
export function compileRouteForwarding(route: RouteConfig, identityHeaders: IdentityHeaders, previous: RouteForwarding | undefined): RouteForwarding {
  const rl = route.rateLimit;
  const own = route.forwardClientCert;
  let rateLimit: RouteRateLimit | null = null;
  if (rl !== undefined) {
    const signature = JSON.stringify([rl.key, rl.rate, rl.burst]);
    rateLimit = previous?.rateLimit?.signature === signature ? previous.rateLimit : { key: rl.key, limiter: new RateLimiter({ ratePerSecond: rl.rate, burst: rl.burst }), signature };
  }
  return {
    rewrite: route.rewrite === undefined ? null : compileRewrite(route.match, route.rewrite.prefix),
    rewritePrefix: route.rewrite?.prefix ?? null,
    host: route.host ?? 'upstream',
    responseTimeout: route.timeouts?.response,
    tunnelIdleTimeout: route.timeouts?.idle ?? DEFAULT_TUNNEL_IDLE_MS,
    rateLimit,
    identityHeaders: own === undefined ? identityHeaders : { xfcc: own.xfcc ?? identityHeaders.xfcc, clientCert: own.clientCert ?? identityHeaders.clientCert, clientCertChain: own.clientCertChain ?? identityHeaders.clientCertChain },
  };
}

/** The rate-limit bucket of an identity: a certificate without a SPIFFE ID is keyed by its fingerprint. */
export function rateLimitKeyOf(identity: PeerIdentity, key: RateLimitKey): string {
  if (key === 'subject') return identity.subject.rfc4514;
  if (key === 'spiffe' && identity.spiffe !== null) return identity.spiffe.uri;
  return identity.fingerprint256;
}
