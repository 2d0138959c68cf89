/**
 * Route forwarding: what a route changes about a request once the policy admitted it. The path
 * rewrite (applied to the normalized path the policy judged, never before), the Host sent
 * upstream, the route's response timeout, and its rate limit (a token bucket per client identity).
 * Compiled once per snapshot; a route's rate limiter is kept across reloads while its settings
 * stay the same, so a reload does not refill every bucket.
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

export interface RouteForwarding {
  readonly rewrite: PathRewrite | null;
  /** The configured rewrite prefix, for logs and `policy explain`. */
  readonly rewritePrefix: string | null;
  readonly host: HostMode;
  readonly responseTimeout: number | undefined;
  readonly rateLimit: RouteRateLimit | null;
}

/** `previous`: the same route's forwarding in the snapshot in force, to keep its rate limiter. */
export function compileRouteForwarding(route: RouteConfig, previous: RouteForwarding | undefined): RouteForwarding {
  const rl = route.rateLimit;
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
    rateLimit,
  };
}

/** The rate-limit bucket of an identity: a certificate without a SPIFFE ID is keyed by its fingerprint. */
export function rateLimitKeyOf(identity: PeerIdentity, key: RateLimitKey): string {
  if (key === 'subject') return identity.subject.rfc4514;
  if (key === 'spiffe' && identity.spiffe !== null) return identity.spiffe.uri;
  return identity.fingerprint256;
}
