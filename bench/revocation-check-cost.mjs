// Micro-benchmark of the per-connection revocation work in the TLS path: completing the client
// chain from the trust bundle and checking it against the index. Run after `npm run build`:
//   node bench/revocation-check-cost.mjs
// Prints microseconds per call; compare with the gateway's 4-7 ms of CPU per full handshake.
import { X509Certificate } from 'node:crypto';
import { createDevPki } from '../dist/pki/dev-pki.js';
import { parseCrlFile } from '../dist/revocation/parse-crl.js';
import { RevocationIndex } from '../dist/revocation/revocation-index.js';
import { validateCrl } from '../dist/revocation/verify-crl.js';
import { ChainLinker } from '../dist/x509/chain-links.js';
import { checkChain } from '../dist/revocation/revocation-policy.js';
const pki = await createDevPki();
const trust = [new X509Certificate(pki.intermediate.certPem), new X509Certificate(pki.root.certPem)];
const crls = [...parseCrlFile(pki.rootCrl.der), ...parseCrlFile(pki.intermediateCrl.der)].map((crl) => ({ crl, issuer: validateCrl(crl, { issuers: trust, now: new Date() }).issuer, source: 'x' }));
const index = RevocationIndex.empty().replace(crls);
const linker = new ChainLinker(trust);
const leaf = new X509Certificate(pki.clients.billing.certPem);
const settings = { scope: 'chain', missing: 'deny', stale: 'deny', graceMs: 0 };
let n = 20000, t = process.hrtime.bigint();
for (let i = 0; i < n; i++) linker.bundleCompletes(leaf.raw);
console.log('bundleCompletes us', (Number(process.hrtime.bigint() - t) / n / 1000).toFixed(1));
t = process.hrtime.bigint();
let links; for (let i = 0; i < n; i++) links = linker.fromBundle(leaf).links;
console.log('fromBundle us', (Number(process.hrtime.bigint() - t) / n / 1000).toFixed(1));
t = process.hrtime.bigint();
for (let i = 0; i < n; i++) checkChain(index, links, settings, Date.now());
console.log('checkChain us', (Number(process.hrtime.bigint() - t) / n / 1000).toFixed(1), JSON.stringify(checkChain(index, links, settings, Date.now())));
