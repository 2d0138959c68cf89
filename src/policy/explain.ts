/**
 * Policy explanations: owns the why behind a decision, for `policy explain` and the policy-denied
 * log line. Not on the hot path: it evaluates every selector of the deciding route in full and
 * copies the identity's values. The decision itself always comes from `decide`, so the two cannot
 * drift apart.
 */
import type { PeerIdentity } from '../identity/peer-identity.js';
import { decide } from './decide.js';
import { hostFits, methodFits, pathFits } from './route-match.js';
import type {
  CompiledPolicy,
  CompiledRoute,
  CompiledSelector,
  Decision,
  Explanation,
  FieldTrace,
  MatchPart,
  RequestAttributes,
  RouteTrace,
  SelectorTrace,
} from './types.js';

export { describeSelector } from './describe-selector.js';

function traceRoute(route: CompiledRoute, req: RequestAttributes): RouteTrace {
  const failed: MatchPart[] = [];
  if (!hostFits(route.match, req.host)) failed.push('host');
  if (!pathFits(route.match, req.path)) failed.push('path');
  if (!methodFits(route.match, req.method)) failed.push('method');
  return { index: route.index, name: route.name, match: route.match.description, matched: failed.length === 0, failed };
}

function traceSelector(sel: CompiledSelector, identity: PeerIdentity): SelectorTrace {
  const fields: FieldTrace[] = sel.checks.map((c) => ({
    field: c.field,
    path: c.path,
    expected: c.expected,
    actual: [...c.actual(identity)],
    matched: c.test(identity),
  }));
  const matchedFields = fields.filter((f) => f.matched).length;
  return {
    rule: sel.rule,
    list: sel.list,
    description: sel.description,
    matched: fields.length > 0 && matchedFields === fields.length,
    matchedFields,
    totalFields: fields.length,
    fields,
  };
}

function closest(allow: readonly SelectorTrace[]): SelectorTrace | null {
  let best: SelectorTrace | null = null;
  for (const s of allow) if (best === null || s.matchedFields > best.matchedFields) best = s;
  return best;
}

function describeRequest(req: RequestAttributes): string {
  return `${req.method} ${req.host ?? '(no host)'} ${req.path}`;
}

function describeRoute(route: CompiledRoute): string {
  return `route "${route.name}" (routes[${route.index}])`;
}

function describeFailures(sel: SelectorTrace): string {
  return sel.fields
    .filter((f) => !f.matched)
    .map((f) => `${f.field} expected ${JSON.stringify(f.expected)}, got ${f.actual.length === 0 ? 'nothing' : JSON.stringify(f.actual)}`)
    .join('; ');
}

function summarize(decision: Decision, req: RequestAttributes, routes: readonly RouteTrace[], closestMiss: SelectorTrace | null): string {
  const text = summarizeDecision(decision, req, routes, closestMiss);
  // Audit mode changes what happens to a deny, not the decision: say both.
  return decision.kind === 'deny' && decision.route.audit ? `would-${text} (audit mode: logged and counted as would-deny, and forwarded)` : text;
}

function summarizeDecision(decision: Decision, req: RequestAttributes, routes: readonly RouteTrace[], closestMiss: SelectorTrace | null): string {
  switch (decision.kind) {
    case 'no-route':
      return `no-route: nothing matches ${describeRequest(req)} (${routes.length} route${routes.length === 1 ? '' : 's'} tried)`;
    case 'allow':
      return `allow: ${describeRoute(decision.route)} by ${decision.rule}`;
    case 'deny':
      if (decision.reason === 'denied-by-rule') return `deny: ${describeRoute(decision.route)} by ${decision.rule ?? '?'}`;
      if (closestMiss === null) return `deny: ${describeRoute(decision.route)} has an empty allow list, so it admits nobody`;
      return (
        `deny: ${describeRoute(decision.route)}: no allow entry matched; closest ${closestMiss.rule} ` +
        `(${closestMiss.matchedFields}/${closestMiss.totalFields} fields) failed ${describeFailures(closestMiss)}`
      );
  }
}

/** The decision for this request, with the trace that led to it. */
export function explain(policy: CompiledPolicy, identity: PeerIdentity, req: RequestAttributes): Explanation {
  const decision = decide(policy, identity, req);
  const routes: RouteTrace[] = [];
  for (const route of policy.routes) {
    const trace = traceRoute(route, req);
    routes.push(trace);
    if (trace.matched) break;
  }
  const route = decision.kind === 'no-route' ? null : decision.route;
  const deny = route === null ? [] : route.deny.map((s) => traceSelector(s, identity));
  const allow = route === null ? [] : route.allow.map((s) => traceSelector(s, identity));
  const closestMiss = decision.kind === 'deny' && decision.reason === 'no-allow-match' ? closest(allow) : null;
  return { decision, request: req, routes, deny, allow, closestMiss, summary: summarize(decision, req, routes, closestMiss) };
}

function formatSelector(sel: SelectorTrace, lines: string[]): void {
  const verdict = sel.matched ? 'MATCH' : `no match (${sel.matchedFields}/${sel.totalFields} fields)`;
  lines.push(`  ${sel.rule} [${sel.description}]: ${verdict}`);
  for (const f of sel.fields) {
    const actual = f.actual.length === 0 ? '(none)' : f.actual.map((v) => JSON.stringify(v)).join(', ');
    lines.push(`    ${f.matched ? 'ok  ' : 'FAIL'} ${f.field}: expected ${JSON.stringify(f.expected)}, actual ${actual}`);
  }
}

/** Multi-line text of an explanation, for the CLI. */
export function formatExplanation(e: Explanation): string {
  const lines = [`request: ${describeRequest(e.request)}`, `decision: ${e.summary}`, 'routes tried:'];
  for (const r of e.routes) {
    lines.push(`  routes[${r.index}] "${r.name}" (${r.match}): ${r.matched ? 'matched' : `no match (${r.failed.join(', ')})`}`);
  }
  if (e.decision.kind !== 'no-route') {
    lines.push(e.deny.length === 0 ? 'deny: (none)' : 'deny:');
    for (const s of e.deny) formatSelector(s, lines);
    lines.push(e.allow.length === 0 ? 'allow: (none: nobody is admitted)' : 'allow:');
    for (const s of e.allow) formatSelector(s, lines);
  }
  if (e.closestMiss !== null) lines.push(`closest miss: ${e.closestMiss.rule} [${e.closestMiss.description}]`);
  return lines.join('\n');
}
