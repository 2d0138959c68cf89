/**
 * Value patterns: owns the glob dialect of selector values and its compilation to matchers, once,
 * at load. The dialect is deliberately tiny: `*` matches within one segment, `**` matches across
 * segments and must be a whole segment; everything else is literal (no `?`, no `[]`). Patterns
 * are anchored to the whole value.
 *
 * Segments: `/` for spiffe and uri paths, `.` for dns names and for the trust domain / authority
 * of spiffe and uri patterns (where `**` is refused: the trust boundary is never open-ended).
 * A DN value and each side of an email address are a single segment.
 *
 * A `*` that is a whole segment (or a whole value) needs at least one character, so
 * `spiffe://example.org/ns/*` does not match `spiffe://example.org/ns/`. A `**` that ends the
 * pattern (`/ns/prod/**`) or starts it (`**.example.com`) matches one or more segments: "anything
 * under", not the parent itself. Between two separators (`/a/**\/b`, also `/**\/b`, whose first
 * segment is the empty one before the root slash) it matches zero or more, so `/a/b` fits.
 *
 * Case: DN values, spiffe and uri compare case-sensitively (a DN is what the CA signed; SPIFFE IDs
 * are case-sensitive by spec); dns compares case-insensitively; email compares its local part
 * case-sensitively and its domain case-insensitively.
 */

export interface ValueMatcher {
  readonly test: (value: string) => boolean;
}

/** A pattern that cannot be compiled; the message is written for the config's author. */
export class PatternError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PatternError';
  }
}

function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

function checkStars(pattern: string): void {
  if (pattern.includes('***')) throw new PatternError('"***" is not a glob: use "*" (within a segment) or "**" (across segments)');
}

/** Regex source for one segment without `**`: `*` stays inside the segment. */
function segmentSource(segment: string, notSep: string): string {
  if (segment === '*') return `${notSep}+`;
  return segment.split('*').map(escapeRegex).join(`${notSep}*`);
}

/** Regex source for a separator-delimited glob (see the module comment for `**` rules). */
function segmentedSource(pattern: string, sep: string, notSep: string): string {
  checkStars(pattern);
  const segments: string[] = [];
  for (const seg of pattern.split(sep)) {
    if (seg.includes('**') && seg !== '**') {
      throw new PatternError(`"**" must be a whole segment (e.g. ${sep === '/' ? '/a/**/b' : '**.example.com'}); use "*" within a segment`);
    }
    // "**/**" means nothing more than "**" and would only add backtracking.
    if (seg === '**' && segments[segments.length - 1] === '**') continue;
    segments.push(seg);
  }
  const sepSource = escapeRegex(sep);
  const last = segments.length - 1;
  let out = '';
  let skipSep = false;
  segments.forEach((seg, i) => {
    if (i > 0 && !skipSep) out += sepSource;
    skipSep = false;
    if (seg !== '**') {
      out += segmentSource(seg, notSep);
    } else if (i > 0 && i < last) {
      // Absorbs its own trailing separator so that zero segments are possible.
      out += `(?:.+${sepSource})?`;
      skipSep = true;
    } else {
      out += '.+';
    }
  });
  return out;
}

/** Labels of a trust domain or URI authority: `*` within one label only, never `**`. */
function authoritySource(authority: string, notLabel: string, what: string): string {
  if (authority.includes('**')) throw new PatternError(`"**" is not allowed in the ${what}: use "*" within one label`);
  return authority
    .split('.')
    .map((label) => {
      if (label === '') throw new PatternError(`the ${what} has an empty label`);
      return segmentSource(label, notLabel);
    })
    .join('\\.');
}

function anchored(source: string, flags = ''): ValueMatcher {
  // 's': `.` inside `**` must also cross characters a regex would otherwise stop at.
  const re = new RegExp(`^(?:${source})$`, `s${flags}`);
  return { test: (value) => re.test(value) };
}

function literal(expected: string): ValueMatcher {
  return { test: (value) => value === expected };
}

const SPIFFE_PREFIX = 'spiffe://';
const TRUST_DOMAIN = /^[a-z0-9._*-]+$/;

export function compileSpiffePattern(pattern: string): ValueMatcher {
  if (!pattern.startsWith(SPIFFE_PREFIX)) throw new PatternError('a SPIFFE ID pattern must start with "spiffe://"');
  const rest = pattern.slice(SPIFFE_PREFIX.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? '' : rest.slice(slash);
  if (trustDomain === '') throw new PatternError('the SPIFFE ID pattern has no trust domain');
  if (!TRUST_DOMAIN.test(trustDomain)) {
    throw new PatternError('a trust domain is lower-case letters, digits, ".", "-" and "_" (with "*" allowed within a label)');
  }
  if (!pattern.includes('*')) return literal(pattern);
  checkStars(pattern);
  const source = escapeRegex(SPIFFE_PREFIX) + authoritySource(trustDomain, '[^./]', 'trust domain') + segmentedSource(path, '/', '[^/]');
  return anchored(source);
}

const URI_WITH_AUTHORITY = /^([^:/?#]+:\/\/)([^/]*)(.*)$/s;

export function compileUriPattern(pattern: string): ValueMatcher {
  if (!pattern.includes('*')) return literal(pattern);
  checkStars(pattern);
  const parts = URI_WITH_AUTHORITY.exec(pattern);
  if (parts === null) return anchored(segmentedSource(pattern, '/', '[^/]'));
  const [, scheme = '', authority = '', path = ''] = parts;
  if (scheme.includes('*')) throw new PatternError('"*" is not allowed in the URI scheme');
  if (authority === '') throw new PatternError('the URI pattern has an empty authority');
  return anchored(escapeRegex(scheme) + authoritySource(authority, '[^./@:?#]', 'URI authority') + segmentedSource(path, '/', '[^/]'));
}

const DNS_PATTERN = /^[a-z0-9*_-]+(?:\.[a-z0-9*_-]+)*$/;

export function compileDnsPattern(pattern: string): ValueMatcher {
  const lower = pattern.toLowerCase();
  if (!DNS_PATTERN.test(lower)) {
    throw new PatternError('not a DNS name pattern: labels of letters, digits, "-", "_" or "*", separated by single dots');
  }
  if (!lower.includes('*')) {
    return { test: (value) => value === lower || (value.length === lower.length && value.toLowerCase() === lower) };
  }
  return anchored(segmentedSource(lower, '.', '[^.]'), 'i');
}

/** A DN attribute value is one segment: `*` is any run of characters, `**` only as the whole value. */
export function compileDnValuePattern(pattern: string): ValueMatcher {
  if (!pattern.includes('*')) return literal(pattern);
  checkStars(pattern);
  if (pattern === '*' || pattern === '**') return anchored('.+');
  if (pattern.includes('**')) throw new PatternError('"**" must be the whole value in a DN attribute; use "*" within a value');
  return anchored(pattern.split('*').map(escapeRegex).join('.*'));
}

function caseInsensitiveLiteral(text: string): string {
  let out = '';
  for (const ch of text) {
    const lower = ch.toLowerCase();
    const upper = ch.toUpperCase();
    out += lower !== upper && lower.length === 1 && upper.length === 1 ? `[${lower}${upper}]` : escapeRegex(ch);
  }
  return out;
}

/**
 * Email: the local part is case-sensitive and the domain is not (RFC 5321). `*` never crosses the
 * "@", so `*@example.com` cannot be satisfied by an address with a second "@".
 */
export function compileEmailPattern(pattern: string): ValueMatcher {
  checkStars(pattern);
  if (pattern === '*' || pattern === '**') return anchored('[^@]+@[^@]+');
  const at = pattern.indexOf('@');
  if (at <= 0 || at !== pattern.lastIndexOf('@') || at === pattern.length - 1) {
    throw new PatternError('an email pattern is local@domain (e.g. *@example.com), or "*" for any address');
  }
  if (pattern.includes('**')) throw new PatternError('"**" is only allowed as the whole email pattern; use "*" within a part');
  const local = pattern.slice(0, at);
  const domain = pattern.slice(at + 1);
  const part = (text: string, literalSource: (t: string) => string): string =>
    text === '*' ? '[^@]+' : text.split('*').map(literalSource).join('[^@]*');
  return anchored(`${part(local, escapeRegex)}@${part(domain, caseInsensitiveLiteral)}`);
}
