/**
 * Policy compiler: owns turning the configured routes into the frozen structure `decide` walks.
 * Every pattern is validated and compiled here, once; any problem is reported with its key path
 * and the whole policy is refused. Fields that the schema would already reject are re-checked,
 * because a selector silently missing a field is a broader selector.
 */
import type { RouteConfig } from '../config/schema.js';
import { normalizeFingerprint, normalizeSerial, type DistinguishedName, type PeerIdentity } from '../identity/peer-identity.js';
import { describeSelector } from './describe-selector.js';
import { canonicalAttributeType } from './dn-attribute-names.js';
import {
  compileDnsPattern,
  compileDnValuePattern,
  compileEmailPattern,
  compileSpiffePattern,
  compileUriPattern,
  PatternError,
  type ValueMatcher,
} from './glob.js';
import { compileIpPattern } from './ip-matcher.js';
import { PolicyCompileError, type PolicyIssue } from './policy-compile-error.js';
import { DECISIONS, type RouteWithDecisions } from './precomputed-decisions.js';
import { compileRouteMatch } from './route-match.js';
import { SELECTOR_FIELDS, type CompiledPolicy, type CompileOptions, type CompiledSelector, type Decision, type FieldCheck, type SelectorField } from './types.js';

// rewrite, host, timeouts and rateLimit shape forwarding after the decision (src/proxy/route-forwarding.ts); the policy ignores them.
const ROUTE_KEYS = new Set(['name', 'match', 'upstream', 'allow', 'deny', 'audit', 'rewrite', 'host', 'timeouts', 'rateLimit', 'forwardClientCert']);
const KNOWN_FIELDS: ReadonlySet<string> = new Set(SELECTOR_FIELDS);
const NO_VALUES: readonly string[] = Object.freeze([]);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function keyPath(base: string, key: string): string {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${base}.${key}` : `${base}[${JSON.stringify(key)}]`;
}

function anyMatches(values: readonly string[], matcher: ValueMatcher): boolean {
  for (let i = 0; i < values.length; i++) if (matcher.test(values[i]!)) return true;
  return false;
}

function dnHas(dn: DistinguishedName, type: string, matcher: ValueMatcher): boolean {
  const attrs = dn.attributes;
  for (let i = 0; i < attrs.length; i++) {
    const a = attrs[i]!;
    if (canonicalAttributeType(a.type) === type && matcher.test(a.value)) return true;
  }
  return false;
}

function dnValues(dn: DistinguishedName, type: string): string[] {
  return dn.attributes.filter((a) => canonicalAttributeType(a.type) === type).map((a) => a.value);
}

type SanField = 'uri' | 'dns' | 'email' | 'ip';

const SAN_COMPILERS: { readonly [F in SanField]: (pattern: string) => ValueMatcher } = {
  uri: compileUriPattern,
  dns: compileDnsPattern,
  email: compileEmailPattern,
  ip: compileIpPattern,
};

/** Compiles one scalar field; throws PatternError (or the normalizers' Error) on a bad value. */
function scalarCheck(field: Exclude<SelectorField, 'subject' | 'issuer'>, pattern: string, path: string): FieldCheck {
  const base = { field, path, expected: pattern };
  switch (field) {
    case 'spiffe': {
      const m = compileSpiffePattern(pattern);
      return { ...base, test: (id) => id.spiffe !== null && m.test(id.spiffe.uri), actual: (id) => (id.spiffe === null ? NO_VALUES : [id.spiffe.uri]) };
    }
    case 'fingerprint': {
      const fp = normalizeFingerprint(pattern);
      return { ...base, test: (id) => id.fingerprint256 === fp, actual: (id) => [id.fingerprint256] };
    }
    case 'serial': {
      const serial = normalizeSerial(pattern);
      return { ...base, test: (id) => id.serial === serial, actual: (id) => [id.serial] };
    }
    default: {
      const m = SAN_COMPILERS[field](pattern);
      return { ...base, test: (id) => anyMatches(id.san[field], m), actual: (id) => id.san[field] };
    }
  }
}

const FIELD_HINTS: Partial<Record<SelectorField, string>> = {
  fingerprint: 'must be a SHA-256 fingerprint: 64 hex digits, ":" separators allowed',
  serial: 'must be a certificate serial in hex, ":" separators and a 0x prefix allowed',
};

function dnChecks(
  which: 'subject' | 'issuer',
  value: unknown,
  path: string,
  issues: PolicyIssue[],
): FieldCheck[] {
  if (!isRecord(value) || Object.keys(value).length === 0) {
    issues.push({ path, message: 'must map DN attribute names to patterns, e.g. { CN: "billing", OU: "payments" }' });
    return [];
  }
  const checks: FieldCheck[] = [];
  for (const [attr, pattern] of Object.entries(value)) {
    const attrPath = keyPath(path, attr);
    const type = canonicalAttributeType(attr);
    if (type === null) {
      issues.push({ path: attrPath, message: `unknown DN attribute "${attr}" (use a short name such as CN, OU, O, L, ST, C, DC, UID, emailAddress, serialNumber, or a dotted OID)` });
      continue;
    }
    if (typeof pattern !== 'string' || pattern === '') {
      issues.push({ path: attrPath, message: 'must be a non-empty pattern' });
      continue;
    }
    try {
      const m = compileDnValuePattern(pattern);
      const pick = (id: PeerIdentity): DistinguishedName => (which === 'subject' ? id.subject : id.issuer);
      // Multi-valued attributes (several OUs) satisfy the check if any one value matches.
      checks.push({
        field: `${which}.${attr}`,
        path: attrPath,
        expected: pattern,
        test: (id) => dnHas(pick(id), type, m),
        actual: (id) => dnValues(pick(id), type),
      });
    } catch (err) {
      issues.push({ path: attrPath, message: err instanceof Error ? err.message : String(err) });
    }
  }
  return checks;
}

/**
 * A DN matcher outside the routes (tls.ocsp.responders[].issuer), with a selector's rules: the same
 * attribute names and patterns, every attribute must match. Throws PolicyCompileError naming `path`.
 */
export function compileDnMatcher(value: Readonly<Record<string, string>>, path: string): (dn: DistinguishedName) => boolean {
  const issues: PolicyIssue[] = [];
  const checks = dnChecks('subject', value, path, issues);
  if (issues.length > 0) throw new PolicyCompileError(issues);
  // The checks read the DN from an identity's subject: hand them one that has only that.
  return (dn) => {
    const holder = { subject: dn } as unknown as PeerIdentity;
    return checks.every((c) => c.test(holder));
  };
}

function compileSelector(sel: unknown, list: 'allow' | 'deny', index: number, rule: string, issues: PolicyIssue[]): CompiledSelector {
  const checks: FieldCheck[] = [];
  const before = issues.length;
  if (!isRecord(sel)) {
    issues.push({ path: rule, message: 'must be a selector mapping (spiffe, uri, dns, email, ip, subject, issuer, fingerprint, serial)' });
  } else {
    for (const key of Object.keys(sel)) {
      if (!KNOWN_FIELDS.has(key) && sel[key] !== undefined) {
        issues.push({ path: keyPath(rule, key), message: `unknown selector field (known: ${SELECTOR_FIELDS.join(', ')})` });
      }
    }
    for (const field of SELECTOR_FIELDS) {
      const value = sel[field];
      if (value === undefined) continue;
      const path = `${rule}.${field}`;
      if (field === 'subject' || field === 'issuer') {
        checks.push(...dnChecks(field, value, path, issues));
        continue;
      }
      if (typeof value !== 'string' || value === '') {
        issues.push({ path, message: 'must be a non-empty string' });
        continue;
      }
      try {
        checks.push(scalarCheck(field, value, path));
      } catch (err) {
        const message = err instanceof PatternError ? err.message : (FIELD_HINTS[field] ?? (err instanceof Error ? err.message : String(err)));
        issues.push({ path, message });
      }
    }
    // An empty selector would match every identity: in an allow list that is "anyone".
    if (checks.length === 0 && issues.length === before) {
      issues.push({ path: rule, message: `a selector needs at least one field (${SELECTOR_FIELDS.join(', ')})` });
    }
  }
  return Object.freeze({
    rule,
    list,
    index,
    description: isRecord(sel) ? describeSelector(sel as never) : '(invalid selector)',
    checks: Object.freeze(checks),
  });
}

function compileSelectorList(raw: unknown, list: 'allow' | 'deny', routePath: string, issues: PolicyIssue[]): CompiledSelector[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) {
    issues.push({ path: `${routePath}.${list}`, message: 'must be a list of selectors' });
    return [];
  }
  return raw.map((sel: unknown, j) => compileSelector(sel, list, j, `${routePath}.${list}[${j}]`, issues));
}

function compileRoute(route: unknown, index: number, issues: PolicyIssue[], foldCase: boolean): RouteWithDecisions {
  const path = `routes[${index}]`;
  const r = isRecord(route) ? route : {};
  if (!isRecord(route)) issues.push({ path, message: 'must be a route mapping (name, match, upstream, allow, deny)' });
  for (const key of Object.keys(r)) {
    if (!ROUTE_KEYS.has(key) && r[key] !== undefined) issues.push({ path: keyPath(path, key), message: 'unknown key (known: name, match, upstream, allow, deny, audit, rewrite, host, timeouts, rateLimit, forwardClientCert)' });
  }
  const name = r['name'];
  const upstream = r['upstream'];
  if (typeof name !== 'string' || name === '') issues.push({ path: `${path}.name`, message: 'must be a non-empty string' });
  if (typeof upstream !== 'string' || upstream === '') issues.push({ path: `${path}.upstream`, message: 'must be a non-empty string' });
  const match = compileRouteMatch(r['match'], `${path}.match`, issues, foldCase);
  const deny = Object.freeze(compileSelectorList(r['deny'], 'deny', path, issues));
  const allow = Object.freeze(compileSelectorList(r['allow'], 'allow', path, issues));
  const audit = r['audit'];
  if (audit !== undefined && typeof audit !== 'boolean') issues.push({ path: `${path}.audit`, message: 'must be true or false' });

  const compiled = {
    index,
    name: typeof name === 'string' ? name : '',
    upstream: typeof upstream === 'string' ? upstream : '',
    match,
    deny,
    allow,
    audit: audit === true,
  } as { -readonly [K in keyof RouteWithDecisions]: RouteWithDecisions[K] };
  const denyDecisions: Decision[] = deny.map((s) => Object.freeze({ kind: 'deny' as const, route: compiled, rule: s.rule, reason: 'denied-by-rule' as const }));
  const allowDecisions: Decision[] = allow.map((s) => Object.freeze({ kind: 'allow' as const, route: compiled, rule: s.rule }));
  compiled[DECISIONS] = Object.freeze({
    deny: Object.freeze(denyDecisions),
    allow: Object.freeze(allowDecisions),
    noAllowMatch: Object.freeze({ kind: 'deny' as const, route: compiled, rule: null, reason: 'no-allow-match' as const }),
  });
  // Decisions end up in log lines; the route's compiled matchers and selectors do not belong there.
  Object.defineProperty(compiled, 'toJSON', { value: () => ({ index, name: compiled.name, upstream: compiled.upstream }) });
  return Object.freeze(compiled);
}

/** Compiles the configured routes; throws PolicyCompileError listing every problem found. */
export function compilePolicy(routes: readonly RouteConfig[], opts: CompileOptions = {}): CompiledPolicy {
  if (!Array.isArray(routes)) throw new PolicyCompileError([{ path: 'routes', message: 'must be a list of routes' }]);
  const issues: PolicyIssue[] = [];
  const foldCase = opts.caseSensitive === false;
  const compiled = (routes as readonly unknown[]).map((route, i) => compileRoute(route, i, issues, foldCase));
  if (issues.length > 0) throw new PolicyCompileError(issues);
  return Object.freeze({ routes: Object.freeze(compiled) });
}
