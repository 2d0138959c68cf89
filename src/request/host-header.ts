/**
 * Host header: the host part of the authority, lower-cased and without port, for route matching.
 * Returns undefined when the header is malformed (refused with 400), null when absent (HTTP/1.0).
 */
const REG_NAME = /^[a-z0-9.-]{1,253}$/;
const IPV6 = /^\[[0-9a-f:.]+\]$/;

/** A port is 1-5 digits and at most 65535 (RFC 3986 allows no sign, blank or hex). */
function validPort(text: string): boolean {
  return /^\d{1,5}$/.test(text) && Number(text) <= 65535;
}

export function hostForRouting(header: string | undefined): string | null | undefined {
  if (header === undefined) return null;
  let host = header.trim().toLowerCase();
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    if (end < 0) return undefined;
    const rest = host.slice(end + 1);
    if (rest !== '' && (rest[0] !== ':' || !validPort(rest.slice(1)))) return undefined;
    host = host.slice(0, end + 1);
    return IPV6.test(host) ? host : undefined;
  }
  const colon = host.indexOf(':');
  if (colon >= 0) {
    if (!validPort(host.slice(colon + 1))) return undefined;
    host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  return REG_NAME.test(host) ? host : undefined;
}
