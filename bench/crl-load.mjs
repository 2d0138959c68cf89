// Benchmark: CRL load (parse + index), signature check, memory and lookup cost at 10k/100k/1M entries,
// with a Set<string> of serials as the alternative the compact index was chosen over.
// Run: npm run build && node --expose-gc bench/crl-load.mjs [sizes...]   (imports the build output)
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { KeyObject, X509Certificate, randomBytes, webcrypto } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { makeBigCrlDer } from '../dist/revocation/crl-writer.js';
import { parseCrl } from '../dist/revocation/parse-crl.js';
import { verifyCrlSignature } from '../dist/revocation/verify-crl.js';
import { issuerKeyOf, RevocationIndex } from '../dist/revocation/revocation-index.js';

const gc = globalThis.gc;
if (typeof gc !== 'function') {
  console.error('run with: node --expose-gc bench/crl-load.mjs');
  process.exit(2);
}

const SIZES = process.argv.slice(2).map(Number).filter((n) => n > 0);
const sizes = SIZES.length ? SIZES : [10_000, 100_000, 1_000_000];
const LOOKUPS = 1_000_000;
const MB = 1024 * 1024;
const workDir = join(process.cwd(), '.bench-work');

function mem() {
  gc();
  gc();
  const m = process.memoryUsage();
  // `external` already includes `arrayBuffers` (Buffers and typed arrays live there).
  return m.heapUsed + m.external;
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function makeCa() {
  x509.cryptoProvider.set(webcrypto);
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01', name: 'CN=Bench CA', notBefore: new Date(now - 864e5), notAfter: new Date(now + 864e5 * 365), keys, signingAlgorithm: alg,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const der = Buffer.from(cert.rawData);
  return { der, node: new X509Certificate(der), key: KeyObject.from(keys.privateKey) };
}

function timeLookups(fn, keys) {
  let sink = 0;
  // Warm-up so the timed loop measures optimised code.
  for (let i = 0; i < 100_000; i++) sink += fn(keys[i % keys.length]) ? 1 : 0;
  const t0 = performance.now();
  for (let i = 0; i < LOOKUPS; i++) sink += fn(keys[i % keys.length]) ? 1 : 0;
  const ns = ((performance.now() - t0) * 1e6) / LOOKUPS;
  return { ns, sink };
}

const ca = await makeCa();
mkdirSync(workDir, { recursive: true });
const rows = [];
const setRows = [];
const now = new Date();

for (const n of sizes) {
  const file = join(workDir, `crl-${n}.der`);
  let t0 = performance.now();
  let der = makeBigCrlDer({
    issuerCertDer: ca.der, issuerKey: ca.key, entries: n, thisUpdate: now, nextUpdate: new Date(now.getTime() + 864e5), crlNumber: BigInt(n),
  });
  const writeMs = performance.now() - t0;
  const derBytes = der.length;
  writeFileSync(file, der);
  der = null;

  // Cold load: what a reload costs, with the file read inside the memory window.
  const m0 = mem();
  const bytes = readFileSync(file);
  t0 = performance.now();
  let crl = parseCrl(bytes);
  const parseColdMs = performance.now() - t0;
  const retained = mem() - m0;

  t0 = performance.now();
  const sig = verifyCrlSignature(crl, ca.node);
  const verifyMs = performance.now() - t0;
  if (!sig.ok) throw new Error(`signature: ${sig.reason}`);

  const warm = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    parseCrl(bytes);
    warm.push(performance.now() - t);
  }

  const hits = [];
  for (const s of crl.revoked.serials()) {
    hits.push(s);
    if (hits.length >= 100_000) break;
  }
  const misses = Array.from({ length: 100_000 }, () => {
    const b = randomBytes(16);
    b[0] = (b[0] | 1) & 0x7f;
    return b.toString('hex').toUpperCase();
  });
  const revoked = crl.revoked;
  const hit = timeLookups((s) => revoked.lookup(s).revoked, hits);
  const miss = timeLookups((s) => revoked.lookup(s).revoked, misses);
  const hasHit = timeLookups((s) => revoked.has(s), hits);
  if (hit.sink !== LOOKUPS + 100_000 || miss.sink !== 0) throw new Error('lookup results wrong');
  // Through the index, as the TLS layer will call it: by issuer key string and by CA certificate object.
  const index = RevocationIndex.empty().withCrl({ crl, issuer: ca.node, source: file });
  const caKey = issuerKeyOf(ca.node);
  const checkKey = timeLookups((s) => index.check(s, caKey, { now }).status === 'good', misses);
  const checkCert = timeLookups((s) => index.check(s, ca.node, { now }).status === 'good', misses);

  rows.push({
    n, derMB: derBytes / MB, writeMs, parseColdMs, parseWarmMs: median(warm), verifyMs,
    retainedMB: retained / MB, indexMB: crl.revoked.indexBytes / MB,
    hitNs: hit.ns, missNs: miss.ns, hasHitNs: hasHit.ns, checkKeyNs: checkKey.ns, checkCertNs: checkCert.ns, count: crl.revokedCount,
  });

  // The alternative: one JS string per serial in a Set (what a straightforward parser would build).
  // Measured with the CRL still alive, so the delta is the Set plus its strings.
  const s0 = mem();
  t0 = performance.now();
  let set = new Set();
  for (const s of crl.revoked.serials()) set.add(s);
  const setMs = performance.now() - t0;
  const setBytes = mem() - s0;
  crl = null;
  const setHit = timeLookups((s) => set.has(s), hits);
  const setMiss = timeLookups((s) => set.has(s), misses);
  setRows.push({ n, setMB: setBytes / MB, setMs, hitNs: setHit.ns, missNs: setMiss.ns });
  set = null;
  rmSync(file, { force: true });
}

const f = (x, d = 1) => x.toFixed(d);
console.log(`Node ${process.version}, ${LOOKUPS.toLocaleString('en')} lookups per cell, ECDSA P-256 CRLs with 16-byte serials, 1 in 4 entries with a reasonCode\n`);
console.log('| entries | DER MB | write ms | parse ms (cold) | parse ms (warm) | verify ms | retained MB (DER+index) | index MB | lookup hit ns | lookup miss ns | has() hit ns | check() miss ns, by key / by cert |');
console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.n.toLocaleString('en')} | ${f(r.derMB)} | ${f(r.writeMs, 0)} | ${f(r.parseColdMs)} | ${f(r.parseWarmMs)} | ${f(r.verifyMs)} | ${f(r.retainedMB)} | ${f(r.indexMB)} | ${f(r.hitNs, 0)} | ${f(r.missNs, 0)} | ${f(r.hasHitNs, 0)} | ${f(r.checkKeyNs, 0)} / ${f(r.checkCertNs, 0)} |`);
}
console.log('\nAlternative not chosen: Set<string> of canonical serials (on top of the DER, which signature checks need anyway)\n');
console.log('| entries | Set + strings MB | build ms (incl. hex strings) | has() hit ns | has() miss ns |');
console.log('|---:|---:|---:|---:|---:|');
for (const r of setRows) {
  console.log(`| ${r.n.toLocaleString('en')} | ${f(r.setMB)} | ${f(r.setMs, 0)} | ${f(r.hitNs, 0)} | ${f(r.missNs, 0)} |`);
}
