/**
 * Revocation: a minimal DER TLV reader shared by the CRL parser and the certificate field walker.
 * Every read is bounds-checked against an explicit limit so that hostile input can only ever
 * produce a DerError, never an out-of-range read, a crash or an endless loop.
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
export const TAG_SEQUENCE = 0x30;

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
    if (len > limit - p) throw new DerError('element length exceeds its container', pos);
    this.tag = tag;
    this.start = pos;
    this.contentStart = p;
    this.end = p + len;
    return this;
  }

  /** Like read(), and the tag must be `tag`. */
  expect(pos: number, limit: number, tag: number, what: string): this {
    if (pos >= limit || pos >= this.buf.length) throw new DerError(`missing ${what}`, pos);
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
 * UTCTime (YYMMDDHHMMSSZ) or GeneralizedTime (YYYYMMDDHHMMSS[.fff]Z), the forms RFC 5280 allows;
 * local times and offsets are refused because they make "now > nextUpdate" ambiguous.
 */
export function decodeTime(buf: Uint8Array, tag: number, start: number, end: number): Date {
  let p = start;
  let year: number;
  if (tag === TAG_UTC_TIME) {
    if (end - start !== 13) throw new DerError('UTCTime must be YYMMDDHHMMSSZ', start);
    const yy = digits(buf, p, 2);
    year = yy >= 50 ? 1900 + yy : 2000 + yy;
    p += 2;
  } else if (tag === TAG_GENERALIZED_TIME) {
    if (end - start < 15) throw new DerError('GeneralizedTime too short', start);
    year = digits(buf, p, 4);
    p += 4;
  } else {
    throw new DerError(`expected a time, found tag 0x${hex2(tag)}`, start);
  }
  const month = digits(buf, p, 2);
  const day = digits(buf, p + 2, 2);
  const hour = digits(buf, p + 4, 2);
  const minute = digits(buf, p + 6, 2);
  const second = digits(buf, p + 8, 2);
  p += 10;
  let ms = 0;
  if (tag === TAG_GENERALIZED_TIME && p < end && buf[p] === 0x2e) {
    p++;
    const fracStart = p;
    while (p < end - 1) {
      const d = buf[p]! - 0x30;
      if (d < 0 || d > 9) throw new DerError('time: bad fraction', p);
      p++;
    }
    if (p === fracStart) throw new DerError('time: empty fraction', p);
    const frac = Buffer.from(buf.subarray(fracStart, Math.min(p, fracStart + 3))).toString('latin1');
    ms = Number(frac.padEnd(3, '0'));
  }
  if (p !== end - 1 || buf[p] !== 0x5a) throw new DerError('time must end in Z', p);
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) {
    throw new DerError('time: field out of range', start);
  }
  const d = new Date(Date.UTC(year, month - 1, day, hour, minute, second, ms));
  // Date.UTC maps years 0-99 to 1900-1999.
  if (year < 100) d.setUTCFullYear(year);
  if (d.getUTCDate() !== day) throw new DerError('time: no such day', start);
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
