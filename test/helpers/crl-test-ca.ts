/**
 * Test CA certificates for the CRL unit tests, made with @peculiar/x509 at a fixed clock (NOW), so
 * CRL parsing and validation can be exercised against CAs with unusual shapes (no SKI, no cRLSign,
 * not a CA, same name with another key, other algorithms).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, X509Certificate, webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type KeyAlg = Parameters<typeof webcrypto.subtle.generateKey>[0];

export const EC = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
export const NOW = new Date('2030-06-01T12:00:00Z');
export const HOUR = 3600_000;

export interface TestCa {
  readonly cert: x509.X509Certificate;
  readonly node: X509Certificate;
  readonly keys: CryptoKeyPair;
  readonly privateKey: KeyObject;
  readonly der: Buffer;
}

export interface CaOptions {
  readonly alg?: KeyAlg & { hash?: string };
  readonly keys?: CryptoKeyPair;
  readonly ca?: boolean;
  readonly keyUsage?: number | null;
  readonly ski?: boolean;
  readonly serial?: string;
}

export async function makeCa(name: string, o: CaOptions = {}): Promise<TestCa> {
  const alg = o.alg ?? EC;
  const keys = o.keys ?? ((await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair);
  const extensions: x509.Extension[] = [new x509.BasicConstraintsExtension(o.ca ?? true, undefined, true)];
  const ku = o.keyUsage === undefined ? x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign : o.keyUsage;
  if (ku !== null) extensions.push(new x509.KeyUsagesExtension(ku, true));
  if (o.ski ?? true) extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: o.serial ?? '01',
    name,
    notBefore: new Date(NOW.getTime() - 365 * 24 * HOUR),
    notAfter: new Date(NOW.getTime() + 365 * 24 * HOUR),
    keys,
    signingAlgorithm: alg as x509.X509CertificateCreateSelfSignedParams['signingAlgorithm'],
    extensions,
  });
  const der = Buffer.from(cert.rawData);
  return { cert, node: new X509Certificate(der), keys, privateKey: KeyObject.from(keys.privateKey), der };
}

