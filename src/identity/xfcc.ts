/**
 * x-forwarded-client-cert: owns the Envoy XFCC encoding of a PeerIdentity that the gateway sends
 * upstream, and the parser for it. Envoy's documentation defines the format:
 *
 *   The XFCC header value is a comma (",") separated string. Each substring is an XFCC element,
 *   which holds information added by a single proxy. [...] Each XFCC element is a semicolon (";")
 *   separated string. Each substring is a key-value pair, grouped together by an equals ("=") sign.
 *   The keys are case-insensitive, the values are case-sensitive. If ",", ";" or "=" appear in a
 *   value, the value should be double-quoted. Double-quotes in the value should be replaced by
 *   backslash-double-quote (\"). [...] Subject: The value is always double-quoted.
 *
 * Two deliberate additions to that text: a value holding `"` is quoted too, and inside quotes `\`
 * is escaped as `\\`. Without the second, a value ending in a backslash (an RFC 4514 subject can)
 * would make the closing quote look escaped, and a subject's own `\,` could not be told apart from
 * an XFCC escape; with it, the quoted form is exactly an HTTP quoted-string (RFC 9110 5.6.4).
 * Envoy's code (conn_manager_utility.cc) differs from its own text: it never quotes URI/DNS and
 * writes the subject between quotes unescaped. The two outputs are identical for the usual
 * subjects and SANs; a subject holding an escaped character (`CN=a\,b`) reaches the upstream as
 * `"CN=a\\,b"`, which an upstream that unescapes only `\"` would misread.
 */
import type { PeerIdentity } from './peer-identity.js';

const NEEDS_QUOTES = /[,;="]/;
/** What an HTTP header value can carry unambiguously: visible ASCII, space and tab. */
const HEADER_SAFE = /^[\t\x20-\x7e]*$/;
const NON_ASCII = /[^\x00-\x7f]/gu;

/**
 * Canonical spelling of the keys Envoy defines; keys are case-insensitive on the wire. A Map, not
 * an object literal: a header key "constructor" or "__proto__" must not find Object.prototype.
 */
const KNOWN_KEYS: ReadonlyMap<string, string> = new Map([
  ['by', 'By'],
  ['hash', 'Hash'],
  ['cert', 'Cert'],
  ['chain', 'Chain'],
  ['subject', 'Subject'],
  ['uri', 'URI'],
  ['dns', 'DNS'],
]);

function quote(value: string): string {
  return `"${value.replace(/[\\"]/g, '\\$&')}"`;
}

function encodeValue(key: string, value: string): string {
  // A SAN is IA5 text chosen by whoever obtained the certificate: a CR/LF or a byte above 0x7e in
  // it must fail the request rather than be mangled into (or split) the header.
  if (!HEADER_SAFE.test(value)) throw new Error(`XFCC ${key} value contains characters an HTTP header cannot carry`);
  return NEEDS_QUOTES.test(value) ? quote(value) : value;
}

/**
 * The subject as Envoy sends it: OpenSSL's RFC 2253 form, in which every non-ASCII byte of the
 * UTF-8 value is written as \XX. PeerIdentity keeps the readable UTF-8 form; both are valid
 * RFC 4514 for the same name, and this one is pure ASCII.
 */
function asciiSubject(rfc4514: string): string {
  return rfc4514.replace(NON_ASCII, (ch) => {
    let out = '';
    for (const b of Buffer.from(ch, 'utf8')) out += '\\' + b.toString(16).toUpperCase().padStart(2, '0');
    return out;
  });
}

/**
 * The XFCC element for one client certificate, in Envoy's key order:
 * `By=...;Hash=...;Subject="...";URI=...;DNS=...`. `By` (the gateway's own URI SAN) only when given.
 * Unlike recent Envoy versions no empty `URI=` is written for a certificate without URI SANs.
 * Throws when a SAN cannot be carried in a header (control or non-ASCII characters).
 */
export function formatXfcc(identity: PeerIdentity, opts: { by?: string | null } = {}): string {
  const parts: string[] = [];
  if (opts.by !== undefined && opts.by !== null && opts.by !== '') parts.push(`By=${encodeValue('By', opts.by)}`);
  parts.push(`Hash=${identity.fingerprint256}`);
  parts.push(`Subject=${quote(asciiSubject(identity.subject.rfc4514))}`);
  for (const uri of identity.san.uri) parts.push(`URI=${encodeValue('URI', uri)}`);
  for (const dns of identity.san.dns) parts.push(`DNS=${encodeValue('DNS', dns)}`);
  return parts.join(';');
}

/**
 * Parses an XFCC header into one record per element (proxy hop), each key mapping to its values in
 * order. Known keys come back in Envoy's spelling (By, Hash, Cert, Chain, Subject, URI, DNS), others
 * as written. Quoted values are unescaped (`\x` -> `x`); unquoted values are taken literally, so
 * an unquoted `=` after the first one is part of the value (Envoy itself does not quote URIs).
 * Throws on malformed input: an unterminated quote, text after a closing quote, a pair without
 * `=`, an empty key or an empty element. Whitespace is skipped at the start of an element (joining
 * repeated header lines with ", " puts it there) and around keys, never inside values.
 */
export function parseXfcc(header: string): Array<Record<string, string[]>> {
  const elements: Array<Record<string, string[]>> = [];
  if (header.trim() === '') return elements;
  let i = 0;
  const n = header.length;
  for (;;) {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
    // Null prototype: a key such as "__proto__" must stay an ordinary entry.
    const element: Record<string, string[]> = Object.create(null) as Record<string, string[]>;
    let pairs = 0;
    for (;;) {
      const keyStart = i;
      while (i < n && header[i] !== '=' && header[i] !== ';' && header[i] !== ',' && header[i] !== '"') i++;
      if (i >= n || header[i] !== '=') throw new Error(`XFCC pair at offset ${keyStart} has no "="`);
      // Keys are tokens, so surrounding whitespace can only be formatting.
      const rawKey = header.slice(keyStart, i).trim();
      if (rawKey === '') throw new Error(`XFCC pair at offset ${keyStart} has an empty key`);
      i++;
      let value = '';
      if (header[i] === '"') {
        i++;
        let closed = false;
        while (i < n) {
          const ch = header[i]!;
          if (ch === '\\') {
            if (i + 1 >= n) break;
            value += header[i + 1];
            i += 2;
          } else if (ch === '"') {
            i++;
            closed = true;
            break;
          } else {
            value += ch;
            i++;
          }
        }
        if (!closed) throw new Error(`XFCC value of ${rawKey} has an unterminated quote`);
        if (i < n && header[i] !== ';' && header[i] !== ',') throw new Error(`XFCC value of ${rawKey} has text after its closing quote`);
      } else {
        const start = i;
        while (i < n && header[i] !== ';' && header[i] !== ',') i++;
        value = header.slice(start, i);
      }
      const key = KNOWN_KEYS.get(rawKey.toLowerCase()) ?? rawKey;
      (element[key] ??= []).push(value);
      pairs++;
      if (i < n && header[i] === ';') {
        i++;
        continue;
      }
      break;
    }
    if (pairs === 0) throw new Error('XFCC has an empty element');
    elements.push(element);
    if (i >= n) return elements;
    // header[i] is ','
    i++;
    if (i >= n) throw new Error('XFCC ends with an empty element');
  }
}
