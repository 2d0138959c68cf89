/**
 * DN attribute names: owns the mapping from the many spellings of an attribute type (CN,
 * commonName, 2.5.4.3) to one canonical key, used for both the config and the certificate so the
 * two always meet. The key is the dotted OID; unknown OIDs stand for themselves.
 */

// [preferred short name, OID, ...aliases]; short names follow RFC 4514 / OpenSSL usage.
const ATTRIBUTES: readonly (readonly string[])[] = [
  ['CN', '2.5.4.3', 'commonName'],
  ['SN', '2.5.4.4', 'surname'],
  ['serialNumber', '2.5.4.5'],
  ['C', '2.5.4.6', 'countryName'],
  ['L', '2.5.4.7', 'localityName'],
  ['ST', '2.5.4.8', 'stateOrProvinceName', 'S'],
  ['street', '2.5.4.9', 'streetAddress'],
  ['O', '2.5.4.10', 'organizationName'],
  ['OU', '2.5.4.11', 'organizationalUnitName'],
  ['title', '2.5.4.12', 'T'],
  ['businessCategory', '2.5.4.15'],
  ['postalCode', '2.5.4.17'],
  ['GN', '2.5.4.42', 'givenName', 'G'],
  ['initials', '2.5.4.43', 'I'],
  ['generationQualifier', '2.5.4.44'],
  ['dnQualifier', '2.5.4.46'],
  ['pseudonym', '2.5.4.65'],
  ['organizationIdentifier', '2.5.4.97'],
  ['DC', '0.9.2342.19200300.100.1.25', 'domainComponent'],
  ['UID', '0.9.2342.19200300.100.1.1', 'userId'],
  ['emailAddress', '1.2.840.113549.1.9.1', 'E'],
];

const OID = /^\d+(?:\.\d+)+$/;

// Exact spellings first so the per-request lookup rarely needs toLowerCase().
const BY_NAME = new Map<string, string>();
for (const [short = '', oid = '', ...aliases] of ATTRIBUTES) {
  for (const name of [short, oid, ...aliases]) {
    BY_NAME.set(name, oid);
    BY_NAME.set(name.toLowerCase(), oid);
  }
}

/** Canonical key (dotted OID) for an attribute type, or null when it is neither known nor an OID. */
export function canonicalAttributeType(type: string): string | null {
  const hit = BY_NAME.get(type) ?? BY_NAME.get(type.toLowerCase());
  if (hit !== undefined) return hit;
  return OID.test(type) ? type : null;
}

