/**
 * Route matching: owns compiling a route's `match` (host, path or pathPrefix, methods) and testing
 * a request against it. Paths are compared as src/request/normalize-path.ts normalizes them, so a configured path
 * that normalization would rewrite is refused here: it could never match.
 */
import { normalizeTarget } from '../request/normalize-path.js';
import type { PolicyIssue } from './policy-compile-error.js';
import type { CompiledRouteMatch, RequestAttributes } from './types.js';

const MATCH_KEYS = new Set(['host', 'path', 'pathPrefix', 'methods']);
const HOST_NAME = /^(?:\*\.)?[a-z0-9_-]+(?:\.[a-z0-9_-]+)*$/;
const HOST_IPV6 = /^\[[0-9a-f:.]+\]$/;
const METHOD = /^[A-Za-z]+$/;

function lowerAscii(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

// Hosts are compared without allocating; "api.example.com." (FQDN form) is the same host.
function hostLength(host: string): number {
  return host.length > 1 && host.charCodeAt(host.length - 1) === 0x2e ? host.length - 1 : host.length;
}

function hostEquals(host: string, want: string): boolean {
  const n = hostLength(host);
  if (n !== want.length) return false;
  for (let i = 0; i < n; i++) if (lowerAscii(host.charCodeAt(i)) !== want.charCodeAt(i)) return false;
  return true;
}

/** `suffix` is ".example.com": exactly one non-empty label may precede it. */
function hostUnderWildcard(host: string, suffix: string): boolean {
  const n = hostLength(host);
  const labelEnd = n - suffix.length;
  if (labelEnd < 1) return false;
  for (let i = 0; i < suffix.length; i++) {
    if (lowerAscii(host.charCodeAt(labelEnd + i)) !== suffix.charCodeAt(i)) return false;
  }
  for (let i = 0; i < labelEnd; i++) if (host.charCodeAt(i) === 0x2e) return false;
  return true;
}

function compileHost(raw: unknown, path: string, issues: PolicyIssue[]): { host: string | null; hostSuffix: string | null } {
  const any = { host: null, hostSuffix: null };
  if (raw === undefined) return any;
  if (typeof raw !== 'string' || raw === '') {
    issues.push({ path, message: 'must be a host name, e.g. api.example.com or *.example.com' });
    return any;
  }
  let pattern = raw.toLowerCase();
  if (pattern.length > 1 && pattern.endsWith('.')) pattern = pattern.slice(0, -1);
  if (!HOST_NAME.test(pattern) && !HOST_IPV6.test(pattern)) {
    const hint = pattern.includes('://') ? ' (no scheme)' : /:\d+$/.test(pattern) ? ' (no port: the port is not part of the match)' : '';
    issues.push({ path, message: `"${raw}" is not a host name or a "*." wildcard for one label${hint}` });
    return any;
  }
  return { host: pattern, hostSuffix: pattern.startsWith('*.') ? pattern.slice(1) : null };
}

function checkConfiguredPath(value: unknown, path: string, issues: PolicyIssue[]): value is string {
  if (typeof value !== 'string' || !value.startsWith('/')) {
    issues.push({ path, message: 'must be a path starting with "/"' });
    return false;
  }
  if (value.includes('*')) {
    issues.push({ path, message: 'globs are not supported in paths; use pathPrefix to match a subtree' });
    return false;
  }
  const normalized = normalizeTarget(value);
  if (!normalized.ok) {
    issues.push({ path, message: `is not a valid request path (${normalized.reason})` });
    return false;
  }
  if (normalized.query !== '') {
    issues.push({ path, message: 'must not contain "?": queries are not matched' });
    return false;
  }
  if (normalized.path !== value) {
    issues.push({ path, message: `requests are matched after normalization, so this could never match; write "${normalized.path}"` });
    return false;
  }
  return true;
}

function compilePath(exact: unknown, prefix: unknown, path: string, issues: PolicyIssue[]): {
  path: string | null;
  pathPrefix: string | null;
  prefixBase: string | null;
} {
  const never = { path: null, pathPrefix: null, prefixBase: null };
  if ((exact === undefined) === (prefix === undefined)) {
    issues.push({ path, message: 'set exactly one of "path" or "pathPrefix"' });
    return never;
  }
  if (exact !== undefined) {
    if (!checkConfiguredPath(exact, `${path}.path`, issues)) return never;
    return { path: exact, pathPrefix: null, prefixBase: null };
  }
  if (!checkConfiguredPath(prefix, `${path}.pathPrefix`, issues)) return never;
  // A trailing slash in the prefix is optional at the boundary: "/orders/" also covers "/orders".
  // "/" becomes "", which every path (they all start with "/") extends at a boundary.
  return { path: null, pathPrefix: prefix, prefixBase: prefix.endsWith('/') ? prefix.slice(0, -1) : prefix };
}

function compileMethods(raw: unknown, path: string, issues: PolicyIssue[]): ReadonlySet<string> | null {
  if (raw === undefined) return null;
  if (!Array.isArray(raw) || raw.length === 0) {
    issues.push({ path, message: 'must be a non-empty list of HTTP methods (omit it to allow any method)' });
    return null;
  }
  const methods = new Set<string>();
  raw.forEach((m: unknown, i) => {
    if (typeof m !== 'string' || !METHOD.test(m)) issues.push({ path: `${path}[${i}]`, message: 'must be an HTTP method name' });
    else methods.add(m.toUpperCase());
  });
  return methods;
}

export function compileRouteMatch(match: unknown, path: string, issues: PolicyIssue[], foldCase = false): CompiledRouteMatch {
  const m = (typeof match === 'object' && match !== null ? match : {}) as Record<string, unknown>;
  if (typeof match !== 'object' || match === null) issues.push({ path, message: 'must be a mapping (host, path or pathPrefix, methods)' });
  for (const key of Object.keys(m)) {
    if (!MATCH_KEYS.has(key) && m[key] !== undefined) issues.push({ path: `${path}.${key}`, message: 'unknown key (known: host, path, pathPrefix, methods)' });
  }
  const host = compileHost(m['host'], `${path}.host`, issues);
  const compiled = compilePath(m['path'], m['pathPrefix'], path, issues);
  // Folded once here, so matching compares against lower-case patterns without allocating.
  const p = foldCase
    ? { path: compiled.path?.toLowerCase() ?? null, pathPrefix: compiled.pathPrefix, prefixBase: compiled.prefixBase?.toLowerCase() ?? null }
    : compiled;
  const methods = compileMethods(m['methods'], `${path}.methods`, issues);
  const description = [
    host.host === null ? null : `host=${host.host}`,
    p.path === null ? null : `path=${p.path}`,
    p.pathPrefix === null ? null : `pathPrefix=${p.pathPrefix}`,
    methods === null ? null : `methods=${[...methods].join(',')}`,
  ]
    .filter((s) => s !== null)
    .join(' ');
  return Object.freeze({ ...host, ...p, foldCase, methods, description: foldCase && description !== '' ? `${description} (case-insensitive)` : description });
}

// Data-driven tests rather than per-route closures: one call site then serves every route.

export function hostFits(match: CompiledRouteMatch, host: string | null): boolean {
  if (match.host === null) return true;
  if (host === null) return false;
  return match.hostSuffix === null ? hostEquals(host, match.host) : hostUnderWildcard(host, match.hostSuffix);
}

/** Does `path` start with the lower-case `prefix`, ignoring ASCII case? */
function startsWithFolded(path: string, prefix: string): boolean {
  if (path.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (lowerAscii(path.charCodeAt(i)) !== prefix.charCodeAt(i)) return false;
  return true;
}

export function pathFits(match: CompiledRouteMatch, path: string): boolean {
  const base = match.prefixBase;
  if (match.foldCase) {
    if (base === null) return path.length === match.path!.length && startsWithFolded(path, match.path!);
    return startsWithFolded(path, base) && (path.length === base.length || path.charCodeAt(base.length) === 0x2f);
  }
  if (base === null) return path === match.path;
  return path.startsWith(base) && (path.length === base.length || path.charCodeAt(base.length) === 0x2f);
}

export function methodFits(match: CompiledRouteMatch, method: string): boolean {
  const methods = match.methods;
  return methods === null || methods.has(method) || methods.has(method.toUpperCase());
}

export function routeMatchFits(match: CompiledRouteMatch, req: RequestAttributes): boolean {
  return pathFits(match, req.path) && methodFits(match, req.method) && hostFits(match, req.host);
}
