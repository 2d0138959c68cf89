/**
 * Request-target normalization: owns turning the raw origin-form request-target into the one
 * canonical path that the route policy judges and that the upstream receives, byte for byte.
 * Anything whose meaning could differ between the gateway and an upstream (encoded separators,
 * encoded dots, backslashes, dot segments hidden behind path parameters, double encoding) is
 * refused rather than repaired: a 400 is cheap, a policy bypass is not.
 */
import { isUtf8 } from 'node:buffer';

export type PathRefusalReason =
  | 'not-origin-form'
  | 'too-long'
  | 'nul'
  | 'control-char'
  | 'non-ascii'
  | 'bad-char'
  | 'backslash'
  | 'fragment'
  | 'bad-escape'
  | 'encoded-slash'
  | 'encoded-backslash'
  | 'encoded-dot'
  | 'encoded-nul'
  | 'double-encoded'
  | 'above-root'
  | 'dot-segment-param'
  | 'encoded-control'
  | 'bad-utf8'
  | 'semicolon'
  | 'trimmable-segment';

/**
 * Spellings that upstreams commonly rewrite before routing: servlet containers and some routers
 * strip `;params`, IIS and the Windows file layer trim a segment's trailing dots and blanks, Java's
 * trim() (Spring) its leading and trailing blanks. The
 * gateway refuses them by default, because the path the policy judged must be the path the
 * upstream routes on; each can be allowed for an upstream known to take the path verbatim.
 */
export interface PathOptions {
  /** Allow `;` (raw or `%3B`) in the path. Default false. */
  readonly allowSemicolons?: boolean;
  /** Allow a segment that starts or ends with an encoded blank (`%20`) or ends with `.`. Default false. */
  readonly allowTrimmableSegments?: boolean;
}

export type NormalizedTarget =
  | { readonly ok: true; readonly path: string; /** Including the leading '?', or ''. */ readonly query: string }
  | { readonly ok: false; readonly reason: PathRefusalReason };

/** Longest raw path accepted, in bytes (the path is ASCII-only, so characters = bytes). */
export const MAX_PATH_BYTES = 8192;

// Refusals are shared frozen objects so that rejecting a flood of bad requests allocates nothing.
const REFUSALS: { readonly [R in PathRefusalReason]: NormalizedTarget } = Object.freeze(
  Object.fromEntries(
    (
      [
        'not-origin-form', 'too-long', 'nul', 'control-char', 'non-ascii', 'bad-char', 'backslash', 'fragment',
        'bad-escape', 'encoded-slash', 'encoded-backslash', 'encoded-dot', 'encoded-nul', 'double-encoded',
        'above-root', 'dot-segment-param', 'encoded-control', 'bad-utf8', 'semicolon', 'trimmable-segment',
      ] as const
    ).map((reason) => [reason, Object.freeze({ ok: false as const, reason })]),
  ) as { [R in PathRefusalReason]: NormalizedTarget },
);

const SLASH = 0x2f;
const DOT = 0x2e;
const PERCENT = 0x25;
const BACKSLASH = 0x5c;
const HASH = 0x23;
const SEMICOLON = 0x3b;
const SPACE = 0x20;
const DEL = 0x7f;

const HEX_UPPER = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

// RFC 3986 unreserved minus '.', whose encoded form is refused outright (see encoded-dot).
function isUnreservedNoDot(c: number): boolean {
  return (
    (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) ||
    c === 0x2d || c === 0x5f || c === 0x7e
  );
}

/** Reason for a character that may never appear raw in a path, or null when it may. */
function rawCharRefusal(c: number): PathRefusalReason | null {
  if (c > SPACE && c < DEL) {
    if (c === BACKSLASH) return 'backslash';
    if (c === HASH) return 'fragment';
    return null;
  }
  if (c === 0) return 'nul';
  if (c === SPACE) return 'bad-char';
  if (c < SPACE || c === DEL) return 'control-char';
  return 'non-ascii';
}

/**
 * The query is not judged by the policy and is forwarded unchanged, but bytes that would make the
 * request line ambiguous (or that the upstream client would re-encode) are still refused.
 */
function queryRefusal(query: string): PathRefusalReason | null {
  for (let i = 0; i < query.length; i++) {
    const c = query.charCodeAt(i);
    if (c > SPACE && c < DEL) {
      if (c === HASH) return 'fragment';
      continue;
    }
    if (c === 0) return 'nul';
    if (c === SPACE) return 'bad-char';
    if (c < SPACE || c === DEL) return 'control-char';
    return 'non-ascii';
  }
  return null;
}

const STRICT: PathOptions = Object.freeze({});

/** Normalizes a raw origin-form request-target (e.g. `req.url`); see the module comment. */
export function normalizeTarget(rawUrl: string, opts: PathOptions = STRICT): NormalizedTarget {
  if (rawUrl.charCodeAt(0) !== SLASH) return REFUSALS['not-origin-form'];
  const q = rawUrl.indexOf('?');
  const rawPath = q < 0 ? rawUrl : rawUrl.slice(0, q);
  const query = q < 0 ? '' : rawUrl.slice(q);
  if (rawPath.length > MAX_PATH_BYTES) return REFUSALS['too-long'];
  if (query.length > 0) {
    const refusal = queryRefusal(query);
    if (refusal !== null) return REFUSALS[refusal];
  }

  // One validating pass; most real paths are already canonical and leave here untouched.
  let slow = false;
  let prev = 0;
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i);
    if (c <= SPACE || c >= DEL || c === BACKSLASH || c === HASH) {
      const refusal = rawCharRefusal(c);
      if (refusal !== null) return REFUSALS[refusal];
    } else if (c === SEMICOLON) {
      if (opts.allowSemicolons !== true) return REFUSALS.semicolon;
    } else if (c === PERCENT || (prev === SLASH && (c === SLASH || c === DOT)) || (c === SLASH && prev === DOT)) {
      slow = true;
    }
    prev = c;
  }
  if (!slow && prev !== DOT) return { ok: true, path: rawPath, query };
  return normalizeSlow(rawPath, query, opts);
}

type SegmentResult = string | { readonly refusal: PathRefusalReason };

/** Value of the escape at raw[i] ('%'), or -1 when it is not `%` followed by two hex digits. */
function escapeAt(raw: string, i: number): number {
  if (raw.charCodeAt(i) !== PERCENT) return -1;
  const h1 = i + 1 < raw.length ? hexValue(raw.charCodeAt(i + 1)) : -1;
  const h2 = i + 2 < raw.length ? hexValue(raw.charCodeAt(i + 2)) : -1;
  return h1 < 0 || h2 < 0 ? -1 : h1 * 16 + h2;
}

/**
 * Escaped bytes above 0x7F must spell valid UTF-8: `%ff`, overlong `%c0%ae`, a truncated
 * `%e2%82` or a surrogate `%ED%A0%80` decode differently (or not at all) from one server to the
 * next. Checks the run of high-byte escapes starting at raw[i]; returns its length in characters.
 */
function utf8RunLength(raw: string, i: number): number {
  const bytes: number[] = [];
  let j = i;
  for (let v = escapeAt(raw, j); v >= 0x80; v = escapeAt(raw, j)) {
    bytes.push(v);
    j += 3;
  }
  return isUtf8(Uint8Array.from(bytes)) ? j - i : -1;
}

/** Decodes unreserved escapes and upper-cases the rest; raw characters were validated already. */
function decodeSegment(raw: string, opts: PathOptions): SegmentResult {
  if (raw.indexOf('%') < 0) return raw;
  let out = '';
  let start = 0;
  let highRunEnd = -1;
  for (let i = 0; i < raw.length; i++) {
    if (raw.charCodeAt(i) !== PERCENT) continue;
    const h1 = i + 1 < raw.length ? hexValue(raw.charCodeAt(i + 1)) : -1;
    const h2 = i + 2 < raw.length ? hexValue(raw.charCodeAt(i + 2)) : -1;
    if (h1 < 0 || h2 < 0) return { refusal: 'bad-escape' };
    const v = h1 * 16 + h2;
    if (v === SLASH) return { refusal: 'encoded-slash' };
    if (v === BACKSLASH) return { refusal: 'encoded-backslash' };
    if (v === DOT) return { refusal: 'encoded-dot' };
    if (v === 0) return { refusal: 'encoded-nul' };
    if (v < SPACE || v === DEL) return { refusal: 'encoded-control' };
    if (v === SEMICOLON && opts.allowSemicolons !== true) return { refusal: 'semicolon' };
    if (v >= 0x80 && i >= highRunEnd) {
      const n = utf8RunLength(raw, i);
      if (n < 0) return { refusal: 'bad-utf8' };
      highRunEnd = i + n;
    }
    out += raw.slice(start, i);
    // Decoding unreserved escapes (RFC 3986 6.2.2.2) makes /orders/%61dmin and /orders/admin
    // the same string, so a rule on one cannot be sidestepped by spelling it as the other.
    out += isUnreservedNoDot(v) ? String.fromCharCode(v) : '%' + HEX_UPPER[h1]! + HEX_UPPER[h2]!;
    start = i + 3;
    i += 2;
  }
  return out + raw.slice(start);
}

function isForbiddenAfterPercent25(path: string, at: number): boolean {
  const h1 = hexValue(path.charCodeAt(at));
  const h2 = hexValue(path.charCodeAt(at + 1));
  if (h1 < 0 || h2 < 0) return false;
  const v = h1 * 16 + h2;
  return v === SLASH || v === BACKSLASH || v === DOT || v === 0;
}

/** A segment a trimming upstream would change: trailing dots (IIS, Windows), blanks at either end (Java's trim(), Spring). */
function isTrimmable(seg: string): boolean {
  return seg.charCodeAt(seg.length - 1) === DOT || seg.endsWith('%20') || seg.startsWith('%20');
}

function normalizeSlow(rawPath: string, query: string, opts: PathOptions): NormalizedTarget {
  const segments: string[] = [];
  let trailingSlash = false;
  let i = 1;
  for (;;) {
    const slash = rawPath.indexOf('/', i);
    const isLast = slash < 0;
    const raw = rawPath.slice(i, isLast ? rawPath.length : slash);
    if (raw.length === 0) {
      // Empty segments collapse ("//admin" is "/admin"); only a final one means "trailing slash".
      trailingSlash = isLast;
    } else {
      const seg = decodeSegment(raw, opts);
      if (typeof seg !== 'string') return REFUSALS[seg.refusal];
      if (seg === '.') {
        trailingSlash = isLast;
      } else if (seg === '..') {
        // RFC 3986 clamps at the root; a client that tries to climb out is not a client to humour.
        if (segments.length === 0) return REFUSALS['above-root'];
        segments.pop();
        trailingSlash = isLast;
      } else if (seg.startsWith('.;') || seg.startsWith('..;') || seg.startsWith('.%3B') || seg.startsWith('..%3B')) {
        // Servlet containers strip ";params" before resolving dots, so "/a/..;/b" is "/b" to them;
        // some decode "%3B" first, so the encoded spelling is refused as well.
        return REFUSALS['dot-segment-param'];
      } else if (opts.allowTrimmableSegments !== true && isTrimmable(seg)) {
        // IIS and the Windows file layer serve "/admin." and "/admin%20" as "/admin"; Spring's
        // trimTokens does the same with "/%20admin" (CVE-2016-5007).
        return REFUSALS['trimmable-segment'];
      } else {
        segments.push(seg);
        trailingSlash = false;
      }
    }
    if (isLast) break;
    i = slash + 1;
  }

  const path = segments.length === 0 ? '/' : '/' + segments.join('/') + (trailingSlash ? '/' : '');
  // Checked on the output because decoding can assemble it: "%25%32%46" becomes "%252F".
  for (let p = path.indexOf('%25'); p >= 0; p = path.indexOf('%25', p + 3)) {
    if (isForbiddenAfterPercent25(path, p + 3)) return REFUSALS['double-encoded'];
  }
  return { ok: true, path, query };
}
