/**
 * Policy types: the shapes shared by the compiler, the per-request decision and the explainer.
 * Compiled objects are frozen and hold everything a decision needs precomputed, so `decide` only
 * compares.
 */
import type { PeerIdentity } from '../identity/peer-identity.js';

export interface RequestAttributes {
  readonly method: string;
  /** Host without port (the caller strips it), or null when the request carried none. */
  readonly host: string | null;
  /** Already normalized by the request layer (see src/request/normalize-path.ts). */
  readonly path: string;
}

/** The selector keys of the config, in the order they are evaluated and described. */
export const SELECTOR_FIELDS = ['spiffe', 'uri', 'dns', 'email', 'ip', 'subject', 'issuer', 'fingerprint', 'serial'] as const;
export type SelectorField = (typeof SELECTOR_FIELDS)[number];

/** One ANDed condition of a selector; a DN selector contributes one check per attribute. */
export interface FieldCheck {
  /** 'spiffe', 'dns', ... or 'subject.OU' (the attribute name as written in the config). */
  readonly field: string;
  /** Key path of the pattern in the config, e.g. routes[0].allow[1].subject.OU */
  readonly path: string;
  /** The pattern as written. */
  readonly expected: string;
  readonly test: (identity: PeerIdentity) => boolean;
  /** The identity's values this check looks at (for explanations only; allocates). */
  readonly actual: (identity: PeerIdentity) => readonly string[];
}

export interface CompiledSelector {
  /** e.g. 'routes[0].allow[1]' */
  readonly rule: string;
  readonly list: 'allow' | 'deny';
  readonly index: number;
  readonly description: string;
  readonly checks: readonly FieldCheck[];
}

export interface CompiledRouteMatch {
  /** Host pattern (lower-case, no trailing dot), or null for any host. */
  readonly host: string | null;
  /** For a "*.example.com" host: ".example.com"; otherwise null. */
  readonly hostSuffix: string | null;
  readonly path: string | null;
  readonly pathPrefix: string | null;
  /** pathPrefix without its trailing slash ("" for "/"): the part a request path must extend at a "/". */
  readonly prefixBase: string | null;
  /** Paths compare ASCII case-insensitively (server.paths.caseSensitive: false); path and prefixBase are lower-case then. */
  readonly foldCase: boolean;
  /** Upper-case method names, or null for any method. */
  readonly methods: ReadonlySet<string> | null;
  /** Short text such as 'host=*.example.com pathPrefix=/orders methods=GET,HEAD'. */
  readonly description: string;
}

export interface CompiledRoute {
  readonly index: number;
  readonly name: string;
  readonly upstream: string;
  readonly match: CompiledRouteMatch;
  readonly deny: readonly CompiledSelector[];
  readonly allow: readonly CompiledSelector[];
  /**
   * Audit mode (`audit: true`): the decision is computed, logged and counted, but a deny is not
   * enforced: the request is forwarded as `would-deny`. Only the policy decision is ever audited;
   * certificate, revocation and path checks always enforce.
   */
  readonly audit: boolean;
}

export interface CompileOptions {
  /** false: route paths match case-insensitively, for upstreams that fold case (default true). */
  readonly caseSensitive?: boolean;
}

export interface CompiledPolicy {
  readonly routes: readonly CompiledRoute[];
}

export type Decision =
  | { readonly kind: 'allow'; readonly route: CompiledRoute; readonly rule: string }
  | {
      readonly kind: 'deny';
      readonly route: CompiledRoute;
      /** The deny entry that matched, or null when no allow entry matched. */
      readonly rule: string | null;
      readonly reason: 'denied-by-rule' | 'no-allow-match';
    }
  | { readonly kind: 'no-route' };

export type MatchPart = 'host' | 'path' | 'method';

export interface RouteTrace {
  readonly index: number;
  readonly name: string;
  /** The route's match, described. */
  readonly match: string;
  readonly matched: boolean;
  /** Every part of the match that did not fit (empty when matched). */
  readonly failed: readonly MatchPart[];
}

export interface FieldTrace {
  readonly field: string;
  readonly path: string;
  readonly expected: string;
  readonly actual: readonly string[];
  readonly matched: boolean;
}

export interface SelectorTrace {
  readonly rule: string;
  readonly list: 'allow' | 'deny';
  readonly description: string;
  readonly matched: boolean;
  readonly matchedFields: number;
  readonly totalFields: number;
  readonly fields: readonly FieldTrace[];
}

export interface Explanation {
  readonly decision: Decision;
  readonly request: RequestAttributes;
  /** Routes in the order tried, up to and including the one that decided. */
  readonly routes: readonly RouteTrace[];
  /** Every deny entry of the deciding route, evaluated in full (empty for no-route). */
  readonly deny: readonly SelectorTrace[];
  /** Every allow entry of the deciding route, evaluated in full (empty for no-route). */
  readonly allow: readonly SelectorTrace[];
  /** When no allow entry matched: the one with the most matching fields (first wins ties). */
  readonly closestMiss: SelectorTrace | null;
  /** One line, suitable for the policy-denied log line. */
  readonly summary: string;
}
