// The benchmark's PKI, generated with the gateway's own pure-JS generator (dist/pki/dev-pki.js) into
// bench/.work/pki: root -> intermediate -> leaves (gateway server, gateway upstream client, upstream
// server, clients billing / intruder / revoked), CRLs of both levels. Regenerated when older than a
// day (the dev CRLs are valid for 7 days). Big intermediate CRLs (100k, 1M entries, with the revoked
// client's serial among them) come from makeBigCrlDer and are cached per intermediate CA.
import { X509Certificate, createHash, createPrivateKey } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const MAX_AGE_MS = 24 * 3600_000;
export const UPSTREAM_NAME = 'upstream';
export const UPSTREAM_SERVERNAME = `${UPSTREAM_NAME}.internal`;

export function pkiPaths(dir) {
  const p = (f) => join(dir, f);
  return {
    dir,
    rootCert: p('root-ca.crt'),
    intermediateCert: p('intermediate-ca.crt'),
    intermediateKey: p('intermediate-ca.key'),
    caBundle: p('ca-bundle.pem'),
    serverCert: p('gateway.crt'),
    serverKey: p('gateway.key'),
    gwClientCert: p('gateway-client.crt'),
    gwClientKey: p('gateway-client.key'),
    upstreamCert: p(`upstream-${UPSTREAM_NAME}.crt`),
    upstreamKey: p(`upstream-${UPSTREAM_NAME}.key`),
    clientCert: p('client-billing.crt'),
    clientKey: p('client-billing.key'),
    clientPem: p('client-billing.pem'),
    intruderCert: p('client-intruder.crt'),
    intruderKey: p('client-intruder.key'),
    revokedCert: p('client-revoked.crt'),
    revokedKey: p('client-revoked.key'),
    rootCrl: p('root.crl.pem'),
    intermediateCrl: p('intermediate.crl.pem'),
    crlBundle: p('crl-bundle.pem'),
  };
}

function fresh(paths) {
  try {
    return Date.now() - statSync(join(paths.dir, '.created')).mtimeMs < MAX_AGE_MS && Object.values(paths).every((f) => existsSync(f));
  } catch {
    return false;
  }
}

export async function ensurePki(checkout, workDir, log) {
  const dir = join(workDir, 'pki');
  const paths = pkiPaths(dir);
  if (fresh(paths)) return paths;
  const t0 = performance.now();
  const { createDevPki } = await import(pathToFileURL(join(checkout, 'dist/pki/dev-pki.js')).href);
  const { writeDevPki } = await import(pathToFileURL(join(checkout, 'dist/pki/write-dev-pki.js')).href);
  rmSync(dir, { recursive: true, force: true });
  rmSync(join(workDir, 'crl'), { recursive: true, force: true });
  const pki = await createDevPki({ upstreamNames: [UPSTREAM_NAME], validityDays: 30 });
  await writeDevPki(pki, dir);
  // nginx reads every CRL of one file; ab wants certificate chain and key in one file.
  writeFileSync(paths.crlBundle, readFileSync(paths.rootCrl, 'utf8') + readFileSync(paths.intermediateCrl, 'utf8'));
  writeFileSync(paths.clientPem, readFileSync(paths.clientCert, 'utf8') + readFileSync(paths.clientKey, 'utf8'), { mode: 0o600 });
  writeFileSync(join(dir, '.created'), new Date().toISOString());
  log(`PKI generated in ${dir} (${Math.round(performance.now() - t0)} ms, ECDSA P-256)`);
  return paths;
}

/** PEM file of an intermediate CRL with `entries` random serials plus the revoked client's. */
export async function ensureBigCrl(checkout, workDir, paths, entries, log) {
  const inter = new X509Certificate(readFileSync(paths.intermediateCert));
  const tag = createHash('sha256').update(inter.raw).digest('hex').slice(0, 12);
  const dir = join(workDir, 'crl');
  const file = join(dir, `intermediate-${entries}-${tag}.crl.pem`);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const { makeBigCrlDer, crlDerToPem } = await import(pathToFileURL(join(checkout, 'dist/revocation/crl-writer.js')).href);
  const t0 = performance.now();
  const now = Date.now();
  const revoked = new X509Certificate(readFileSync(paths.revokedCert)).serialNumber;
  const der = makeBigCrlDer({
    issuerCertDer: inter.raw,
    issuerKey: createPrivateKey(readFileSync(paths.intermediateKey)),
    entries,
    thisUpdate: new Date(now - 60_000),
    nextUpdate: new Date(now + 20 * 24 * 3600_000),
    crlNumber: BigInt(Math.floor(now / 1000)),
    includeSerials: [{ serial: revoked, reason: 1 }],
  });
  writeFileSync(file, crlDerToPem(der));
  log(`CRL with ${entries.toLocaleString('en')} entries written (${(der.length / 2 ** 20).toFixed(1)} MB DER, ${Math.round(performance.now() - t0)} ms)`);
  return file;
}
