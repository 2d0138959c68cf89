/**
 * X.509: the canonical text of a certificate serial and of a SHA-256 fingerprint, the two hex
 * identifiers that config, policy, CRL lookups and logs compare. One spelling each, so a serial
 * from a CRL, from Node's X509Certificate and from a config file compare equal.
 */

const HEX = /^[0-9a-f]+$/;

/** Canonical serial: upper-case hex, separators removed, leading zero bytes dropped ("00AB" -> "AB"). */
export function normalizeSerial(input: string): string {
  let hex = input.replace(/[:\s]/g, '').toLowerCase();
  if (hex.startsWith('0x')) hex = hex.slice(2);
  if (!HEX.test(hex)) throw new Error(`not a hex serial: ${input}`);
  if (hex.length % 2 === 1) hex = '0' + hex;
  while (hex.length > 2 && hex.startsWith('00')) hex = hex.slice(2);
  return hex.toUpperCase();
}

/** Canonical SHA-256 fingerprint: lower-case hex, 64 digits, separators removed. */
export function normalizeFingerprint(input: string): string {
  const hex = input.replace(/[:\s]/g, '').toLowerCase();
  if (hex.length !== 64 || !HEX.test(hex)) throw new Error(`not a SHA-256 fingerprint: ${input}`);
  return hex;
}
