/**
 * Precomputed decisions: owns the Decision objects built once per route at compile time, so that
 * `decide` returns a shared frozen object instead of allocating per request. They hang off a
 * symbol so that logging a route (JSON) neither shows them nor meets a cycle.
 */
import type { CompiledRoute, Decision } from './types.js';

export const DECISIONS: unique symbol = Symbol('mtls-gateway.policy.decisions');

export interface PrecomputedDecisions {
  readonly deny: readonly Decision[];
  readonly allow: readonly Decision[];
  readonly noAllowMatch: Decision;
}

export interface RouteWithDecisions extends CompiledRoute {
  readonly [DECISIONS]: PrecomputedDecisions;
}

export const NO_ROUTE: Decision = Object.freeze({ kind: 'no-route' as const });
