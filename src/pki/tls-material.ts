/**
 * PKI material: loads and checks the certificates, keys, CA bundles and CRL files the config names,
 * before anything listens. Every failure names the config key and the file, so a wrong path or a
 * key that does not belong to its certificate stops startup (or a reload) with a clear message.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import { PEM_FILE_MAX_BYTES, readRegularFile } from '../config/read-regular-file.js';
import { GatewayError, isGatewayError } from '../errors/registry.js';
import { certificateDn } from '../x509/dn.js';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** What the reader is told about a file: the key naming it (for messages) and its size limit. */
export interface ReadFileLimits {
  readonly key: string;
  readonly maxBytes: number;
}

/** Injected so tests can serve material from memory; a reader may ignore `limits`. */
export type ReadFileFn = (file: string, limits: ReadFileLimits) => Promise<Buffer>;

/** Regular files only, at most `maxBytes` (a device or FIFO as `tls.cert` must not hang startup). */
export const readFileFromDisk: ReadFileFn = (file, limits) => readRegularFile(file, { ...limits, code: 'GW_ERR_TLS_MATERIAL' });

export interface CertificateChain {
  /** PEM of the leaf followed by any intermediates, as read. */
  readonly pem: string;
  readonly leaf: X509Certificate;
  readonly chain: readonly X509Certificate[];
}

export interface KeyPairMaterial extends CertificateChain {
  readonly keyPem: string;
  readonly key: KeyObject;
}

export interface TrustBundle {
  /** One PEM string per certificate (Node's `ca` option takes them best this way). */
  readonly pems: readonly string[];
  readonly certs: readonly X509Certificate[];
}

function materialError(key: string, file: string, why: string, cause?: unknown): GatewayError {
  return new GatewayError('GW_ERR_TLS_MATERIAL', { message: `${key}: ${why} (${file})`, detail: { key, file }, cause });
}

async function readText(read: ReadFileFn, key: string, file: string): Promise<string> {
  try {
    return (await read(file, { key, maxBytes: PEM_FILE_MAX_BYTES })).toString('utf8');
  } catch (err) {
    // readFileFromDisk already names the key, the file and the reason.
    if (isGatewayError(err)) throw err;
    throw materialError(key, file, `cannot read file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, err);
  }
}

function parseCerts(text: string, key: string, file: string): { pems: string[]; certs: X509Certificate[] } {
  const pems = text.match(PEM_CERT) ?? [];
  if (pems.length === 0) throw materialError(key, file, 'no PEM certificate found');
  const certs = pems.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch (err) {
      throw materialError(key, file, `certificate #${i + 1} does not parse`, err);
    }
  });
  return { pems, certs };
}

export async function loadKeyPair(
  read: ReadFileFn,
  keys: { cert: string; key: string },
  files: { cert: string; key: string },
  now: Date,
): Promise<KeyPairMaterial> {
  const certText = await readText(read, keys.cert, files.cert);
  const { pems, certs } = parseCerts(certText, keys.cert, files.cert);
  const keyPem = await readText(read, keys.key, files.key);
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    throw materialError(keys.key, files.key, 'not a readable private key (PEM, unencrypted)', err);
  }
  const leaf = certs[0]!;
  if (!leaf.checkPrivateKey(key)) {
    throw materialError(keys.key, files.key, `private key does not belong to the certificate in ${files.cert}`);
  }
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= now.getTime()) {
    throw materialError(keys.cert, files.cert, `certificate expired at ${notAfter.toISOString()}`);
  }
  return { pem: pems.join('\n') + '\n', leaf, chain: certs, keyPem, key };
}

export async function loadTrustBundle(read: ReadFileFn, key: string, file: string): Promise<TrustBundle> {
  const { pems, certs } = parseCerts(await readText(read, key, file), key, file);
  const nonCa = certs.findIndex((c) => !c.ca);
  if (nonCa >= 0) throw materialError(key, file, `certificate #${nonCa + 1} (${certificateDn(certs[nonCa]!)}) is not a CA certificate`);
  return { pems, certs };
}
