/**
 * Route policy: the public surface of the policy engine (compile once, decide per request,
 * explain on demand). Pure: no I/O, no clock.
 */
export { compilePolicy } from './compile-policy.js';
export { decide, selectorMatches } from './decide.js';
export { describeSelector } from './describe-selector.js';
export { explain, formatExplanation } from './explain.js';
export { PolicyCompileError, type PolicyIssue } from './policy-compile-error.js';
export type {
  CompiledPolicy,
  CompiledRoute,
  CompiledRouteMatch,
  CompiledSelector,
  Decision,
  Explanation,
  FieldCheck,
  FieldTrace,
  MatchPart,
  RequestAttributes,
  RouteTrace,
  SelectorField,
  SelectorTrace,
} from './types.js';
