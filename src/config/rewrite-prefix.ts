/**
 * Which `routes[].rewrite.prefix` values are acceptable: plain path segments only, so a rewrite
 * applied after the policy decision can never bring back what path normalization refused
 * (src/proxy/rewrite-path.ts applies it).
 */

const MAX_PREFIX_LENGTH = 1024;

/**
 * The characters a path segment may hold unencoded (RFC 3986 pchar) less ";", which servlet
 * containers treat as a parameter separator. "%" is out too: an escape in the prefix would reach
 * the upstream as something other than what the operator reads in the config.
 */
const SEGMENT_CHAR = /^[A-Za-z0-9\-._~!$&'()*+,=:@]$/;

/** Why a rewrite prefix is refused, or null when acceptable. */
export function rewritePrefixProblem(prefix: string): string | null {
  if (!prefix.startsWith('/')) return 'must start with "/"';
  if (prefix.length > MAX_PREFIX_LENGTH) return `must be at most ${MAX_PREFIX_LENGTH} characters`;
  for (const ch of prefix) {
    if (ch === '/' || SEGMENT_CHAR.test(ch)) continue;
    return `must not contain ${describeChar(ch)}: only letters, digits, "/" and -._~!$&'()*+,=:@ (no escapes)`;
  }
  if (prefix.includes('//')) return 'must not contain "//" (an empty segment)';
  for (const segment of prefix.split('/')) {
    if (segment === '.' || segment === '..') return `must not contain a "${segment}" segment`;
  }
  return null;
}

function describeChar(ch: string): string {
  const code = ch.codePointAt(0)!;
  if (code < 0x20 || code === 0x7f) return `a control character (U+${hex(code)})`;
  if (code > 0x7f) return `a non-ASCII character (U+${hex(code)})`;
  if (/\s/.test(ch)) return 'whitespace';
  return `"${ch}"`;
}

function hex(code: number): string {
  return code.toString(16).toUpperCase().padStart(4, '0');
}
