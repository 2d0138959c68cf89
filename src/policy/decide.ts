/**
 * Per-request decision: owns walking the compiled routes for one request. This is the hot path:
 * it only compares, and returns decision objects that were built at compile time.
 */
import type { PeerIdentity } from '../identity/peer-identity.js';
import { DECISIONS, NO_ROUTE, type RouteWithDecisions } from './precomputed-decisions.js';
import { routeMatchFits } from './route-match.js';
import type { CompiledPolicy, CompiledSelector, Decision, RequestAttributes } from './types.js';

export function selectorMatches(sel: CompiledSelector, identity: PeerIdentity): boolean {
  const checks = sel.checks;
  // An empty selector never reaches here (compile refuses it); an empty `every` would be true.
  if (checks.length === 0) return false;
  for (let i = 0; i < checks.length; i++) if (!checks[i]!.test(identity)) return false;
  return true;
}

/**
 * First route whose match fits decides; within it deny entries are checked before allow entries,
 * and without a matching allow entry the answer is deny.
 */
export function decide(policy: CompiledPolicy, identity: PeerIdentity, req: RequestAttributes): Decision {
  const routes = policy.routes as readonly RouteWithDecisions[];
  for (let r = 0; r < routes.length; r++) {
    const route = routes[r]!;
    if (!routeMatchFits(route.match, req)) continue;
    const decisions = route[DECISIONS];
    const deny = route.deny;
    for (let i = 0; i < deny.length; i++) if (selectorMatches(deny[i]!, identity)) return decisions.deny[i]!;
    const allow = route.allow;
    for (let i = 0; i < allow.length; i++) if (selectorMatches(allow[i]!, identity)) return decisions.allow[i]!;
    return decisions.noAllowMatch;
  }
  return NO_ROUTE;
}
