/**
 * Revocation: the revoked-serial set of one CRL, as an open-addressing hash table over the CRL's
 * own DER bytes. Keys are (offset, length) pairs pointing at the serial's content octets, so a
 * million entries cost ~25 MB of typed arrays on top of the DER instead of a million JS strings;
 * revocation date and reason are decoded from the DER only on a hit (they are for the log).
 */

import { DerCursor, decodeSmallInt, decodeTime, TAG_ENUMERATED, TAG_OCTET_STRING, TAG_OID, TAG_SEQUENCE, TAG_BOOLEAN } from '../x509/der.js';

export type SerialLookup =
  | { readonly revoked: false }
  | { readonly revoked: true; readonly reason: string | null; readonly revokedAt: Date | null };

export interface RevokedEntry {
  /** Canonical hex: upper-case, no leading 00 bytes. */
  readonly serial: string;
  readonly reason: string | null;
  readonly revokedAt: Date | null;
}

/** RFC 5280 serials are at most 20 octets; 255 leaves room for broken CAs while fitting a Uint8Array. */
export const MAX_SERIAL_BYTES = 255;

/** RFC 5280 CRLReason names (5.3.1); unknown codes are kept visible as `reason-<n>`. */
export function crlReasonName(code: number): string {
  switch (code) {
    case 0: return 'unspecified';
    case 1: return 'keyCompromise';
    case 2: return 'cACompromise';
    case 3: return 'affiliationChanged';
    case 4: return 'superseded';
    case 5: return 'cessationOfOperation';
    case 6: return 'certificateHold';
    case 8: return 'removeFromCRL';
    case 9: return 'privilegeWithdrawn';
    case 10: return 'aACompromise';
    default: return `reason-${code}`;
  }
}

/**
 * FNV-1a with a murmur3 finaliser: byte-wise so the lookup side can hash the bytes it decodes from
 * hex, and the finaliser matters because linear probing punishes the clustered low bits that
 * sequential serials would otherwise produce.
 */
function hashBytes(buf: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function nibble(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const l = c | 0x20;
  if (l >= 97 && l <= 102) return l - 87;
  return -1;
}

function tableCapacity(entries: number): number {
  // Load factor <= 0.5 keeps probe chains short and guarantees an empty slot, so probes terminate.
  let cap = 4;
  while (cap < entries * 2) cap *= 2;
  return cap;
}

/** Marks an entry whose serial repeats an earlier one (kept out of the table and out of iteration). */
const DROPPED = 0xffffffff;

function sameSerial(der: Buffer, off: Uint32Array, len: Uint8Array, a: number, b: number): boolean {
  const n = len[a]!;
  if (len[b] !== n) return false;
  const oa = off[a]!;
  const ob = off[b]!;
  for (let j = 0; j < n; j++) if (der[oa + j] !== der[ob + j]) return false;
  return true;
}

/** Filled by the CRL parser, one add() per entry, then turned into the table by finish(). */
export class RevokedSerialsBuilder {
  private readonly der: Buffer;
  private readonly serialOff: Uint32Array;
  private readonly serialLen: Uint8Array;
  private readonly entryOff: Uint32Array;
  private readonly hashes: Uint32Array;
  private count = 0;

  constructor(der: Buffer, maxEntries: number) {
    this.der = der;
    this.serialOff = new Uint32Array(maxEntries);
    this.serialLen = new Uint8Array(maxEntries);
    this.entryOff = new Uint32Array(maxEntries);
    this.hashes = new Uint32Array(maxEntries);
  }

  /** Records the entry starting at `entryStart` whose canonical serial bytes are [serialStart, serialEnd). */
  add(entryStart: number, serialStart: number, serialEnd: number): void {
    const idx = this.count++;
    if (idx >= this.entryOff.length) throw new RangeError('RevokedSerialsBuilder: more entries than announced');
    this.serialOff[idx] = serialStart;
    this.serialLen[idx] = serialEnd - serialStart;
    this.entryOff[idx] = entryStart;
    this.hashes[idx] = hashBytes(this.der, serialStart, serialEnd);
  }

  /**
   * Builds the table. Entries are inserted grouped by the high bits of their home slot: inserting
   * in CRL order touches a random slot per entry, and with a 16 MB table (1M entries) each of those
   * is a cache and TLB miss, measured at ~250 ns an entry; grouped, the writes walk the table in
   * order. A repeated serial keeps its first entry (the grouping is a stable counting sort).
   */
  finish(): RevokedSerials {
    const n = this.count;
    const cap = tableCapacity(n);
    const mask = cap - 1;
    const capBits = Math.log2(cap);
    const bucketBits = Math.min(capBits, 10);
    const shift = capBits - bucketBits;
    const buckets = 1 << bucketBits;
    const hashes = this.hashes;

    const start = new Uint32Array(buckets + 1);
    for (let e = 0; e < n; e++) start[((hashes[e]! & mask) >>> shift) + 1]!++;
    for (let b = 0; b < buckets; b++) start[b + 1]! += start[b]!;
    // The hash travels with the index so the insertion loop reads both sequentially.
    const orderE = new Uint32Array(n);
    const orderH = new Uint32Array(n);
    for (let e = 0; e < n; e++) {
      const h = hashes[e]!;
      const k = start[(h & mask) >>> shift]!++;
      orderE[k] = e;
      orderH[k] = h;
    }

    const der = this.der;
    const slots = new Uint32Array(cap * 2);
    const serialOff = this.serialOff;
    const serialLen = this.serialLen;
    let duplicates = 0;
    for (let k = 0; k < n; k++) {
      const h = orderH[k]!;
      let i = h & mask;
      let dup = false;
      for (;;) {
        const s = slots[i * 2]!;
        if (s === 0) break;
        if (slots[i * 2 + 1] === h && sameSerial(der, serialOff, serialLen, s - 1, orderE[k]!)) {
          dup = true;
          break;
        }
        i = (i + 1) & mask;
      }
      const e = orderE[k]!;
      if (dup) {
        this.entryOff[e] = DROPPED;
        duplicates++;
        continue;
      }
      slots[i * 2] = e + 1;
      slots[i * 2 + 1] = h;
    }
    return new RevokedSerials(der, slots, mask, serialOff.subarray(0, n), serialLen.subarray(0, n), this.entryOff.subarray(0, n), n - duplicates);
  }
}

/**
 * The typed arrays behind a RevokedSerials, so a table built on a worker thread can be moved to
 * another thread by transferring their buffers instead of copying them.
 */
export interface RevokedSerialsTransfer {
  readonly slots: Uint32Array;
  readonly mask: number;
  readonly serialOff: Uint32Array;
  readonly serialLen: Uint8Array;
  readonly entryOff: Uint32Array;
  readonly size: number;
}

export class RevokedSerials {
  /** Distinct serials. */
  readonly size: number;
  private readonly der: Buffer;
  /** Pairs [entryIndex + 1, hash]; 0 marks an empty slot. Interleaved so a probe touches one cache line. */
  private readonly slots: Uint32Array;
  private readonly mask: number;
  private readonly serialOff: Uint32Array;
  private readonly serialLen: Uint8Array;
  private readonly entryOff: Uint32Array;
  /** Per-table scratch for the decoded query; single-threaded, and lookups never re-enter. */
  private readonly scratch = new Uint8Array(MAX_SERIAL_BYTES);

  /** @internal use RevokedSerialsBuilder */
  constructor(der: Buffer, slots: Uint32Array, mask: number, serialOff: Uint32Array, serialLen: Uint8Array, entryOff: Uint32Array, size: number) {
    this.der = der;
    this.slots = slots;
    this.mask = mask;
    this.serialOff = serialOff;
    this.serialLen = serialLen;
    this.entryOff = entryOff;
    this.size = size;
  }

  /**
   * Rebuilds a table from toTransferable() output and the DER it indexes. Only the shape is checked
   * (a mismatch means a bug on the sending side); the contents are trusted as the builder's own.
   */
  static fromTransferable(der: Buffer, t: RevokedSerialsTransfer): RevokedSerials {
    const n = t.entryOff.length;
    const shapeOk = Number.isInteger(t.mask) && t.mask >= 0 && ((t.mask + 1) & t.mask) === 0 &&
      t.slots.length === (t.mask + 1) * 2 && t.serialOff.length === n && t.serialLen.length === n &&
      Number.isInteger(t.size) && t.size >= 0 && t.size <= n;
    if (!shapeOk) throw new RangeError('RevokedSerials.fromTransferable: inconsistent table');
    return new RevokedSerials(der, t.slots, t.mask, t.serialOff, t.serialLen, t.entryOff, t.size);
  }

  /**
   * The arrays themselves, not copies: list their buffers in a postMessage transfer list to move
   * them. Once transferred, this instance is unusable (its arrays are detached).
   */
  toTransferable(): RevokedSerialsTransfer {
    return { slots: this.slots, mask: this.mask, serialOff: this.serialOff, serialLen: this.serialLen, entryOff: this.entryOff, size: this.size };
  }

  /** Bytes held by the index itself (the DER it points into is accounted separately). */
  get indexBytes(): number {
    return this.slots.byteLength + this.serialOff.byteLength + this.serialLen.byteLength + this.entryOff.byteLength;
  }

  /**
   * O(1) membership by serial hex. Accepts the canonical form and, for robustness, lower case and
   * leading zeros; throws TypeError on anything that is not hex, because a garbage serial is a
   * caller bug that must not read as "not revoked".
   */
  lookup(serialHex: string): SerialLookup {
    const e = this.find(serialHex);
    if (e < 0) return { revoked: false };
    const info = this.decodeEntry(this.entryOff[e]!);
    return { revoked: true, reason: info.reason, revokedAt: info.revokedAt };
  }

  has(serialHex: string): boolean {
    return this.find(serialHex) >= 0;
  }

  /** Every entry, decoded; for tests, admin dumps and cross-checks, not for the request path. */
  *entries(): IterableIterator<RevokedEntry> {
    for (let e = 0; e < this.entryOff.length; e++) {
      if (this.entryOff[e] === DROPPED) continue;
      const info = this.decodeEntry(this.entryOff[e]!);
      yield { serial: this.serialAt(e), reason: info.reason, revokedAt: info.revokedAt };
    }
  }

  *serials(): IterableIterator<string> {
    for (let e = 0; e < this.entryOff.length; e++) if (this.entryOff[e] !== DROPPED) yield this.serialAt(e);
  }

  private serialAt(e: number): string {
    const off = this.serialOff[e]!;
    return this.der.toString('hex', off, off + this.serialLen[e]!).toUpperCase();
  }

  private find(hex: string): number {
    const n = hex.length;
    if (n === 0) throw new TypeError('empty serial');
    const sc = this.scratch;
    let i = 0;
    // Stripping leading '0' digits yields the canonical byte string: leading zero bytes go, and an
    // odd remainder starts with a half byte.
    while (i < n && hex.charCodeAt(i) === 48) i++;
    let len: number;
    if (i === n) {
      sc[0] = 0;
      len = 1;
    } else {
      len = (n - i + 1) >> 1;
      if (len > MAX_SERIAL_BYTES) {
        for (; i < n; i++) if (nibble(hex.charCodeAt(i)) < 0) throw new TypeError(`not a hex serial: ${hex}`);
        return -1;
      }
      let k = 0;
      if ((n - i) & 1) {
        const v = nibble(hex.charCodeAt(i++));
        if (v < 0) throw new TypeError(`not a hex serial: ${hex}`);
        sc[k++] = v;
      }
      for (; i < n; i += 2) {
        const hi = nibble(hex.charCodeAt(i));
        const lo = nibble(hex.charCodeAt(i + 1));
        if ((hi | lo) < 0) throw new TypeError(`not a hex serial: ${hex}`);
        sc[k++] = (hi << 4) | lo;
      }
    }
    const h = hashBytes(sc, 0, len);
    const slots = this.slots;
    const mask = this.mask;
    const der = this.der;
    let s = h & mask;
    for (;;) {
      const v = slots[s * 2]!;
      if (v === 0) return -1;
      if (slots[s * 2 + 1] === h) {
        const e = v - 1;
        if (this.serialLen[e] === len) {
          const off = this.serialOff[e]!;
          let j = 0;
          while (j < len && der[off + j] === sc[j]) j++;
          if (j === len) return e;
        }
      }
      s = (s + 1) & mask;
    }
  }

  /** Date and reason of one entry; the parser validated the structure, so failures only blank a field. */
  private decodeEntry(off: number): { reason: string | null; revokedAt: Date | null } {
    const der = this.der;
    const c = new DerCursor(der);
    let reason: string | null = null;
    let revokedAt: Date | null = null;
    try {
      c.read(off, der.length);
      const entryEnd = c.end;
      c.read(c.contentStart, entryEnd);
      c.read(c.end, entryEnd);
      const timeEnd = c.end;
      try {
        revokedAt = decodeTime(der, c.tag, c.contentStart, c.end);
      } catch {
        revokedAt = null;
      }
      if (timeEnd < entryEnd) {
        c.expect(timeEnd, entryEnd, TAG_SEQUENCE, 'crlEntryExtensions');
        const extsEnd = c.end;
        let p = c.contentStart;
        while (p < extsEnd) {
          c.expect(p, extsEnd, TAG_SEQUENCE, 'Extension');
          const extEnd = c.end;
          p = extEnd;
          c.expect(c.contentStart, extEnd, TAG_OID, 'extnID');
          const isReason = c.end - c.contentStart === 3 && der[c.contentStart] === 0x55 && der[c.contentStart + 1] === 0x1d && der[c.contentStart + 2] === 0x15;
          if (!isReason) continue;
          let q = c.end;
          c.read(q, extEnd);
          if (c.tag === TAG_BOOLEAN) {
            q = c.end;
            c.read(q, extEnd);
          }
          if (c.tag !== TAG_OCTET_STRING) break;
          c.expect(c.contentStart, c.end, TAG_ENUMERATED, 'reasonCode');
          reason = crlReasonName(decodeSmallInt(der, c.contentStart, c.end, 'reasonCode'));
        }
      }
    } catch {
      // Structure was checked at parse time; a surprise here must not turn a hit into a miss.
    }
    return { reason, revokedAt };
  }
}
