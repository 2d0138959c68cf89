/**
 * SPIFFE IDs: the one parser that decides whether a URI is a SPIFFE ID (SPIFFE-ID spec, section 2).
 * It is deliberately stricter than generic URI parsing: no normalisation is attempted, so two
 * strings that differ are never treated as the same identity.
 */
import type { SpiffeId } from './peer-identity.js';

const SCHEME_PREFIX = 'spiffe://';
const MAX_ID_LENGTH = 2048;
const MAX_TRUST_DOMAIN_LENGTH = 255;
// The charsets leave no room for userinfo ('@'), a port (':'), a query ('?'), a fragment ('#') or
// percent-encoding ('%'): each of those is rejected by the character check alone.
const TRUST_DOMAIN_CHARS = /^[a-z0-9._-]+$/;
const SEGMENT_CHARS = /^[A-Za-z0-9._-]+$/;

/**
 * The SPIFFE ID in `uri`, or null when it is not one. The scheme must be exactly `spiffe` and the
 * trust domain lower-case: the spec allows no other spelling, and accepting one would let
 * `SPIFFE://Example.org/x` pass a policy written for `spiffe://example.org/x` by accident of
 * normalisation elsewhere.
 */
export function parseSpiffeId(uri: string): SpiffeId | null {
  if (uri.length > MAX_ID_LENGTH || !uri.startsWith(SCHEME_PREFIX)) return null;
  const rest = uri.slice(SCHEME_PREFIX.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (trustDomain.length > MAX_TRUST_DOMAIN_LENGTH || !TRUST_DOMAIN_CHARS.test(trustDomain)) return null;
  if (path !== '') {
    // Splitting "/a//b" or "/a/" yields empty segments, which the spec forbids like "." and "..".
    for (const segment of path.slice(1).split('/')) {
      if (segment === '.' || segment === '..' || !SEGMENT_CHARS.test(segment)) return null;
    }
  }
  return { uri, trustDomain, path };
}
