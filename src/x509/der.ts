/**
 * X.509: the one DER reader. Certificates (identity, CA fields) and CRLs are both walked with it,
 * so there is one answer to what a well-formed length, OID, INTEGER or time is. Every read is
 * bounds-checked against an explicit limit so that hostile input can only ever produce a DerError,
 * never an out-of-range read, a crash or an endless loop.
 */

/** Malformed DER. `offset` is the byte position where the problem was detected. */
export class DerError extends Error {
  readonly reason: string;
  readonly offset: number;

  constructor(reason: string, offset: number) {
    super(`${reason} (at byte ${offset})`);
    this.name = 'DerError';
    this.reason = reason;
    this.offset = offset;
  }
}

export const TAG_BOOLEAN = 0x01;
export const TAG_INTEGER = 0x02;
export const TAG_BIT_STRING = 0x03;
export const TAG_OCTET_STRING = 0x04;
export const TAG_OID = 0x06;
export const TAG_ENUMERATED = 0x0a;
export const TAG_UTC_TIME = 0x17;
export const TAG_GENERALIZED_TIME = 0x18;
export const TAG_UTF8_STRING = 0x0c;
export const TAG_NUMERIC_STRING = 0x12;
export const TAG_PRINTABLE_STRING = 0x13;
export const TAG_TELETEX_STRING = 0x14;
export const TAG_IA5_STRING = 0x16;
export const TAG_VISIBLE_STRING = 0x1a;
export const TAG_UNIVERSAL_STRING = 0x1c;
export const TAG_BMP_STRING = 0x1e;
export const TAG_SEQUENCE = 0x30;
export const TAG_SET = 0x31;

/**
 * A mutable header reader. The CRL hot loop reads millions of headers; reusing one object keeps
 * that loop allocation-free.
 */
export class DerCursor {
  readonly buf: Uint8Array;
  tag = 0;
  start = 0;
  contentStart = 0;
  end = 0;

  constructor(buf: Uint8Array) {
    this.buf = buf;
  }

  /** Reads the header at `pos`; the whole element must fit before `limit`. */
  read(pos: number, limit: number): this {
    const buf = this.buf;
    if (limit > buf.length) limit = buf.length;
    if (pos + 2 > limit) throw new DerError('truncated element header', pos);
    const tag = buf[pos]!;
    // Multi-byte tag numbers never occur in certificates or CRLs; refusing them keeps the reader simple.
    if ((tag & 0x1f) === 0x1f) throw new DerError('high tag numbers are not supported', pos);
    let len = buf[pos + 1]!;
    let p = pos + 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n === 0) throw new DerError('indefinite length is not DER', pos);
      // Four length octets already allow 4 GiB, more than any Buffer we could have been handed.
      if (n > 4) throw new DerError('length field too long', pos);
      if (p + n > limit) throw new DerError('truncated length field', pos);
      len = 0;
      for (let i = 0; i < n; i++) len = len * 256 + buf[p++]!;
    }
    if (len > limit - p) throw new DerError('element length overruns its container (truncated)', pos);
    this.tag = tag;
    this.start = pos;
    this.contentStart = p;
    this.end = p + len;
    return this;
  }

  /** Like read(), and the tag must be `tag`. */
  expect(pos: number, limit: number, tag: number, what: string): this {
    if (pos >= limit || pos >= this.buf.length) throw new DerError(`missing ${what} (truncated)`, pos);
    this.read(pos, limit);
    if (this.tag !== tag) throw new DerError(`${what}: expected tag 0x${hex2(tag)}, found 0x${hex2(this.tag)}`, pos);
    return this;
  }
}

/** Dotted-decimal form of an OBJECT IDENTIFIER's content octets. */
export function decodeOid(buf: Uint8Array, start: number, end: number): string {
  if (end <= start) throw new DerError('empty OBJECT IDENTIFIER', start);
  const parts: string[] = [];
  let value = 0n;
  let first = true;
  for (let i = start; i < end; i++) {
    const b = buf[i]!;
    if (value === 0n && b === 0x80) throw new DerError('non-minimal OBJECT IDENTIFIER arc', i);
    value = (value << 7n) | BigInt(b & 0x7f);
    if (b & 0x80) continue;
    if (first) {
      const x = value < 80n ? value / 40n : 2n;
      parts.push(String(x), String(value - x * 40n));
      first = false;
    } else {
      parts.push(String(value));
    }
    value = 0n;
  }
  if (buf[end - 1]! & 0x80) throw new DerError('truncated OBJECT IDENTIFIER', end - 1);
  return parts.join('.');
}

/** Unsigned big-endian integer content -> bigint; negative INTEGERs are refused. */
export function decodeUnsignedInteger(buf: Uint8Array, start: number, end: number, what: string): bigint {
  if (end <= start) throw new DerError(`${what}: empty INTEGER`, start);
  if (buf[start]! & 0x80) throw new DerError(`${what}: negative INTEGER`, start);
  let v = 0n;
  for (let i = start; i < end; i++) v = (v << 8n) | BigInt(buf[i]!);
  return v;
}

/** Small non-negative INTEGER or ENUMERATED (versions, reason codes). */
export function decodeSmallInt(buf: Uint8Array, start: number, end: number, what: string): number {
  const len = end - start;
  if (len < 1 || len > 4) throw new DerError(`${what}: integer of ${len} bytes`, start);
  if (buf[start]! & 0x80) throw new DerError(`${what}: negative integer`, start);
  let v = 0;
  for (let i = start; i < end; i++) v = v * 256 + buf[i]!;
  return v;
}

function digits(buf: Uint8Array, pos: number, n: number): number {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const d = buf[pos + i]! - 0x30;
    if (d < 0 || d > 9) throw new DerError('time: non-digit', pos + i);
    v = v * 10 + d;
  }
  return v;
}

/**
 * Whether a time element has the one shape RFC 5280 allows (4.1.2.5, 5.1.2.4): UTCTime
 * YYMMDDHHMMSSZ (13 octets) or GeneralizedTime YYYYMMDDHHMMSSZ (15 octets), seconds present, no
 * fraction, always Z. A cheap check for the CRL entry loop, which decodes the digits only on a hit.
 */
export function isTimeShape(buf: Uint8Array, tag: number, start: number, end: number): boolean {
  const len = end - start;
  return (tag === TAG_UTC_TIME ? len === 13 : tag === TAG_GENERALIZED_TIME && len === 15) && buf[end - 1] === 0x5a;
}

/**
 * A certificate or CRL time, per RFC 5280: UTCTime YYMMDDHHMMSSZ (YY >= 50 is 19YY, else 20YY) or
 * GeneralizedTime YYYYMMDDHHMMSSZ. Fractional seconds, missing seconds, local times and offsets are
 * refused: RFC 5280 forbids them, and an offset would make "now > nextUpdate" ambiguous. The date
 * must exist (no 31 April, no hour 24, no leap second).
 */
export function decodeTime(buf: Uint8Array, tag: number, start: number, end: number): Date {
  if (tag !== TAG_UTC_TIME && tag !== TAG_GENERALIZED_TIME) throw new DerError(`expected a time, found tag 0x${hex2(tag)}`, start);
  if (!isTimeShape(buf, tag, start, end)) {
    throw new DerError(tag === TAG_UTC_TIME ? 'UTCTime must be YYMMDDHHMMSSZ' : 'GeneralizedTime must be YYYYMMDDHHMMSSZ', start);
  }
  let p = start;
  let year: number;
  if (tag === TAG_UTC_TIME) {
    const yy = digits(buf, p, 2);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    p += 2;
  } else {
    year = digits(buf, p, 4);
    p += 4;
  }
  const month = digits(buf, p, 2);
  const day = digits(buf, p + 2, 2);
  const hour = digits(buf, p + 4, 2);
  const minute = digits(buf, p + 6, 2);
  const second = digits(buf, p + 8, 2);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    throw new DerError('time: field out of range', start);
  }
  const d = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, 0);
  if (d.getUTCMonth() !== month - 1 || d.getUTCDate() !== day) throw new DerError('time: no such day', start);
  return d;
}

export function isTimeTag(tag: number): boolean {
  return tag === TAG_UTC_TIME || tag === TAG_GENERALIZED_TIME;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

/** Byte-wise equality of two ranges without allocating subarrays. */
export function rangeEquals(a: Uint8Array, aStart: number, aEnd: number, b: Uint8Array, bStart: number, bEnd: number): boolean {
  const len = aEnd - aStart;
  if (len !== bEnd - bStart) return false;
  for (let i = 0; i < len; i++) if (a[aStart + i] !== b[bStart + i]) return false;
  return true;
}

/** The id-ce extension number when the OID content octets are 2.5.29.n with n < 128, else -1. */
export function idCe(buf: Uint8Array, start: number, end: number): number {
  if (end - start !== 3 || buf[start] !== 0x55 || buf[start + 1] !== 0x1d) return -1;
  const n = buf[start + 2]!;
  return n < 0x80 ? n : -1;
}

/** One Extension, as offsets into the walked buffer. */
export interface ExtensionView {
  readonly oidStart: number;
  readonly oidEnd: number;
  readonly critical: boolean;
  /** Content of extnValue's OCTET STRING: the DER of the extension's own value. */
  readonly valueStart: number;
  readonly valueEnd: number;
}

/**
 * Walks `Extensions ::= SEQUENCE OF Extension`, which must fill [start, end) exactly, calling
 * `visit` for each one in order. Shared by certificates and CRLs. Uses (and moves) the cursor `c`.
 */
export function walkExtensions(c: DerCursor, start: number, end: number, visit: (ext: ExtensionView) => void): void {
  const der = c.buf;
  c.expect(start, end, TAG_SEQUENCE, 'Extensions');
  if (c.end !== end) throw new DerError('trailing data after Extensions', c.end);
  const listEnd = c.end;
  let p = c.contentStart;
  // SIZE (1..MAX) per RFC 5280, but some encoders (@peculiar/x509 among them) emit an empty list per
  // CRL entry; it carries no meaning, so tolerate it.
  while (p < listEnd) {
    c.expect(p, listEnd, TAG_SEQUENCE, 'Extension');
    const extEnd = c.end;
    p = extEnd;
    c.expect(c.contentStart, extEnd, TAG_OID, 'extnID');
    const oidStart = c.contentStart;
    const oidEnd = c.end;
    // Locals, not c.tag: TypeScript keeps c.tag narrowed across c.read() calls.
    let tag = c.read(oidEnd, extEnd).tag;
    let critical = false;
    if (tag === TAG_BOOLEAN) {
      if (c.end - c.contentStart !== 1) throw new DerError('critical: bad BOOLEAN', c.start);
      critical = der[c.contentStart] !== 0;
      tag = c.read(c.end, extEnd).tag;
    }
    if (tag !== TAG_OCTET_STRING) throw new DerError('extnValue: expected OCTET STRING', c.start);
    if (c.end !== extEnd) throw new DerError('trailing data in Extension', c.end);
    visit({ oidStart, oidEnd, critical, valueStart: c.contentStart, valueEnd: c.end });
  }
}
