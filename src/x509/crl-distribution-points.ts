/**
 * X.509: the CRL distribution points (RFC 5280 4.2.1.13) a CA certificate names, reduced to the
 * URLs the gateway may fetch by itself (tls.crlFromDistributionPoints). Only what a url CRL source
 * can serve is kept: `fullName` http:// and https:// URIs of points that are neither indirect
 * (cRLIssuer: the CRL is signed by another CA, which the CRL engine refuses) nor partitioned by
 * reason (reasons: a partial CRL, also refused). ldap:// and other schemes and
 * nameRelativeToCRLIssuer are ignored. A certificate is input the gateway did not write, so every
 * URL that could surprise an HTTP client (control characters, spaces, non-ASCII bytes, credentials,
 * over CDP_MAX_URL_LENGTH) is refused here and never reaches a fetch, and a malformed certificate
 * or extension yields no URL at all rather than an exception.
 */

import { forEachExtension, walkCertificate } from './cert-fields.js';
import { DerCursor, DerError, idCe, TAG_SEQUENCE } from './der.js';

/** Most URLs taken from one certificate; real CAs name one to three. */
export const CDP_MAX_URLS = 16;
/** Longest URL accepted (bytes, also after URL normalization). */
export const CDP_MAX_URL_LENGTH = 2048;

const CE_CRL_DISTRIBUTION_POINTS = 31;
/** DistributionPoint fields: distributionPoint [0] is EXPLICIT (its type is a CHOICE), the others IMPLICIT. */
const DP_NAME = 0xa0;
const DP_REASONS = 0x81;
const DP_CRL_ISSUER = 0xa2;
/** DistributionPointName choices. */
const DPN_FULL_NAME = 0xa0;
const DPN_RELATIVE_NAME = 0xa1;
/** GeneralName uniformResourceIdentifier [6] IA5String. */
const GN_URI = 0x86;

/**
 * The fetchable CRL URLs of a certificate, in the order the certificate lists them, deduplicated
 * (after WHATWG URL normalization, which is also the form returned). Never throws: a malformed
 * certificate or extension gives []. `onRefused` hears, without the offending bytes, why a
 * http(s) URL or the whole extension was refused, so the caller can log it.
 */
export function crlDistributionPointUrls(certDer: Buffer, onRefused?: (reason: string) => void): string[] {
  const refused = onRefused ?? (() => undefined);
  try {
    return readUrls(certDer, refused);
  } catch (err) {
    refused(`malformed certificate or CRLDistributionPoints extension: ${err instanceof DerError ? err.message : String(err)}`);
    return [];
  }
}

function readUrls(der: Buffer, refused: (reason: string) => void): string[] {
  const layout = walkCertificate(der);
  const urls: string[] = [];
  let found = false;
  forEachExtension(der, layout, (ext) => {
    if (idCe(der, ext.oidStart, ext.oidEnd) !== CE_CRL_DISTRIBUTION_POINTS) return;
    // RFC 5280 4.2: an extension appears at most once; two would leave the answer ambiguous.
    if (found) throw new DerError('CRLDistributionPoints extension appears twice', ext.oidStart);
    found = true;
    readDistributionPoints(der, ext.valueStart, ext.valueEnd, urls, refused);
  });
  return urls;
}

/** CRLDistributionPoints ::= SEQUENCE SIZE (1..MAX) OF DistributionPoint */
function readDistributionPoints(der: Buffer, start: number, end: number, urls: string[], refused: (reason: string) => void): void {
  const c = new DerCursor(der);
  c.expect(start, end, TAG_SEQUENCE, 'CRLDistributionPoints');
  if (c.end !== end) throw new DerError('trailing data after CRLDistributionPoints', c.end);
  const listEnd = c.end;
  let capped = false;
  for (let p = c.contentStart; p < listEnd; ) {
    c.expect(p, listEnd, TAG_SEQUENCE, 'DistributionPoint');
    const dpEnd = c.end;
    p = dpEnd;
    let name: { start: number; end: number } | null = null;
    let usable = true;
    let order = 0;
    for (let q = c.contentStart; q < dpEnd; ) {
      const tag = c.read(q, dpEnd).tag;
      q = c.end;
      const rank = tag === DP_NAME ? 1 : tag === DP_REASONS ? 2 : tag === DP_CRL_ISSUER ? 3 : 0;
      if (rank <= order) throw new DerError(`DistributionPoint: unexpected field (tag 0x${tag.toString(16)})`, c.start);
      order = rank;
      if (rank === 1) name = { start: c.contentStart, end: c.end };
      else usable = false; // reasons (a partial CRL) or cRLIssuer (an indirect CRL)
    }
    if (name === null) continue;
    const candidates = fullNameUris(c, name.start, name.end);
    if (!usable) continue;
    for (const raw of candidates) {
      const url = acceptUrl(der, raw.start, raw.end, refused);
      if (url === null || urls.includes(url)) continue;
      if (urls.length === CDP_MAX_URLS) {
        if (!capped) refused(`more than ${CDP_MAX_URLS} distinct CRL URLs; the rest are ignored`);
        capped = true;
        continue;
      }
      urls.push(url);
    }
  }
}

/** The URI GeneralNames of a DistributionPointName's fullName; none for nameRelativeToCRLIssuer. */
function fullNameUris(c: DerCursor, start: number, end: number): Array<{ start: number; end: number }> {
  const tag = c.read(start, end).tag;
  if (c.end !== end) throw new DerError('trailing data in distributionPoint', c.end);
  if (tag === DPN_RELATIVE_NAME) return [];
  if (tag !== DPN_FULL_NAME) throw new DerError(`distributionPoint: unexpected tag 0x${tag.toString(16)}`, start);
  const out: Array<{ start: number; end: number }> = [];
  const namesEnd = c.end;
  for (let p = c.contentStart; p < namesEnd; ) {
    if (c.read(p, namesEnd).tag === GN_URI) out.push({ start: c.contentStart, end: c.end });
    p = c.end;
  }
  return out;
}

const HTTP_SCHEME = /^https?:\/\//i;

/** The normalized URL, or null when it is not http(s) (silently) or is refused (reported). */
function acceptUrl(der: Buffer, start: number, end: number, refused: (reason: string) => void): string | null {
  // Checked on the bytes, before anything parses them: the WHATWG parser would silently strip
  // tabs and newlines and trim spaces, so what was fetched would not be what the CA wrote.
  const len = end - start;
  if (len > CDP_MAX_URL_LENGTH) {
    refused(`a CRL URI of ${len} bytes (limit ${CDP_MAX_URL_LENGTH})`);
    return null;
  }
  for (let i = start; i < end; i++) {
    const b = der[i]!;
    if (b <= 0x20 || b >= 0x7f) {
      refused(`a CRL URI with a control character, space or non-ASCII byte (0x${b.toString(16).padStart(2, '0')} at position ${i - start})`);
      return null;
    }
  }
  const text = der.toString('latin1', start, end);
  if (!HTTP_SCHEME.test(text)) return null;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    refused('a CRL URI that is not a valid URL');
    return null;
  }
  if (url.username !== '' || url.password !== '') {
    refused('a CRL URI carrying credentials');
    return null;
  }
  if (url.href.length > CDP_MAX_URL_LENGTH) {
    refused(`a CRL URI of ${url.href.length} bytes once normalized (limit ${CDP_MAX_URL_LENGTH})`);
    return null;
  }
  return url.href;
}
