// tls.ocsp: client certificates are checked against an OCSP responder (the test's own, started on
// 127.0.0.1, signing with the intermediate CA's key) beside the CRLs. A verified "good" admits, one
// answer serves every connection of the certificate, "revoked" and "unknown" refuse in every mode,
// a responder that fails is decided by onUnavailable, `require` needs a responder, a CRL that lists
// the certificate wins over a good OCSP answer, and a revocation the responder publishes while a
// keep-alive connection is open closes that connection at the next refresh.
import { readFile, writeFile } from 'node:fs/promises';
import { constants } from 'node:http2';
import https from 'node:https';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import t, { type Test } from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles, type TestPki } from '../helpers/harness.js';
import { goawayOf, h2connect, h2request } from '../helpers/h2-client.js';
import { issueLeafWithOcsp, startOcspResponder, type OcspResponder } from '../helpers/ocsp-responder.js';

const SPIFFE = 'spiffe://example.org/ns/default/sa/billing';

async function setup(t: Test, ocspYaml: string, opts: { validityMs?: number; crl?: boolean } = {}) {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const responder = await startOcspResponder({ issuerCertPem: pki.intermediate.certPem, issuerKeyPem: pki.intermediate.keyPem, ...(opts.validityMs ? { validityMs: opts.validityMs } : {}) });
  t.teardown(() => responder.close());
  const upstream = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => upstream.close());
  const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: upstream.port, ...(opts.crl === false ? { crl: false } : {}), extra: '' }).replace('tls:\n', `tls:\n${ocspYaml}\n`) });
  t.teardown(() => gw.close());
  const leaf = (cn: string) => issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn, uris: [SPIFFE] });
  return { pki, dir, responder, upstream, gw, leaf };
}

function get(port: number, client: { chainPem: string; keyPem: string }, pki: TestPki, path = '/orders/1') {
  return request(port, client as never, pki.root.certPem, { path });
}

function ocspLookups(responder: OcspResponder): number {
  return responder.requests;
}

t.test('prefer: good admits, one lookup serves many connections, revoked and unknown refuse', async (t) => {
  const { pki, responder, gw, leaf, upstream } = await setup(t, '  ocsp: { mode: prefer }');
  const good = await leaf('good');
  const results = await Promise.all(Array.from({ length: 6 }, () => get(gw.port, good, pki)));
  t.same(results.map((r) => r.status), [200, 200, 200, 200, 200, 200], 'six concurrent connections admitted');
  t.equal(ocspLookups(responder), 1, 'concurrent first connections joined one lookup');
  t.equal((await get(gw.port, good, pki)).status, 200);
  t.equal(ocspLookups(responder), 1, 'a later connection used the cached answer');

  const revoked = await leaf('revoked');
  responder.setStatus(revoked.serial, 'revoked', { revokedAt: new Date(Date.now() - 60_000), reason: 'keyCompromise' });
  const r = await get(gw.port, revoked, pki);
  t.equal(r.status, 401);
  t.match(r.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
  t.match(
    gw.logs.find((l) => l['event'] === 'client-revoked' && l['serial'] === revoked.serial && l['when'] === 'request'),
    { code: 'GW_ERR_CLIENT_CERT_REVOKED', source: 'ocsp', reason: /OCSP: revoked \(keyCompromise\)/ },
    'the refusal names OCSP and the reason',
  );

  const unknown = await leaf('unknown');
  responder.setStatus(unknown.serial, 'unknown');
  const u = await get(gw.port, unknown, pki);
  t.equal(u.status, 401);
  t.match(u.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN' } });
  t.equal(upstream.seen.length, 7, 'only the admitted requests reached the upstream');

  const status = gw.gateway.status();
  t.match(status.ocsp, [{ domain: 'clients', mode: 'prefer', lookups: 3 }]);
  const metrics = await gw.gateway.metrics.text();
  t.match(metrics, /mtls_gateway_ocsp_lookups_total\{domain="clients",result="good"\} 1/);
  t.match(metrics, /mtls_gateway_ocsp_lookups_total\{domain="clients",result="revoked"\} 1/);
  t.match(metrics, /mtls_gateway_ocsp_cache_total\{domain="clients",result="hit"\} [1-9]/);
});

t.test('a CRL that lists the certificate refuses it although OCSP says good', async (t) => {
  const { pki, dir, responder, gw, leaf } = await setup(t, '  ocsp: { mode: prefer }', { crl: false });
  await gw.close();
  const cert = await leaf('listed');
  const crl = await createCrl(pki.intermediate, { revoked: [{ serial: cert.serial, reason: 'keyCompromise' }], crlNumber: 5 });
  await writeFile(path.join(dir, 'intermediate.crl.pem'), crl.pem);
  const upstream = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => upstream.close());
  const gw2 = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: upstream.port }).replace('tls:\n', 'tls:\n  ocsp: { mode: prefer }\n') });
  t.teardown(() => gw2.close());
  const r = await get(gw2.port, cert, pki);
  t.equal(r.status, 401);
  t.match(r.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
  t.equal(responder.requests, 0, 'a certificate its CRL lists is refused without a lookup');
  const other = await leaf('not-listed');
  t.equal((await get(gw2.port, other, pki)).status, 200, 'CRL (not listed) and OCSP (good) together admit');
});

t.test('require: a certificate without a known responder is refused; prefer leaves it to the CRLs', async (t) => {
  const { pki, gw } = await setup(t, '  ocsp: { mode: require }');
  const plain = pki.clients['billing']!;
  const r = await get(gw.port, plain, pki);
  t.equal(r.status, 401);
  t.match(r.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN' } });
  t.match(gw.logs.find((l) => l['event'] === 'client-revoked' && l['when'] === 'request'), { reason: /no responder is known/ });

  const p = await setup(t, '  ocsp: { mode: prefer }');
  t.equal((await get(p.gw.port, p.pki.clients['billing']!, p.pki)).status, 200, 'prefer: no AIA, the CRLs decide (not listed)');
  t.equal(p.responder.requests, 0);
});

t.test('a configured responder for the issuer is used instead of the AIA URL', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const responder = await startOcspResponder({ issuerCertPem: pki.intermediate.certPem, issuerKeyPem: pki.intermediate.keyPem });
  t.teardown(() => responder.close());
  const upstream = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => upstream.close());
  const issuerCn = 'Example Dev Intermediate CA';
  const gw = await startGateway({
    dir,
    yaml: gatewayYaml({ upstreamPort: upstream.port }).replace('tls:\n', `tls:\n  ocsp:\n    mode: require\n    responders:\n      - { issuer: { CN: "${issuerCn}" }, url: "${responder.url}" }\n`),
  });
  t.teardown(() => gw.close());
  // The harness's billing certificate has no AIA at all: only the configured responder can answer.
  const r = await get(gw.port, pki.clients['billing']!, pki);
  t.equal(r.status, 200);
  t.equal(responder.requests, 1);
});

for (const [mode, why] of [
  ['down', 'the responder drops the connection'],
  ['error', 'the responder answers tryLater'],
  ['wrong-signer', 'the answer is signed by another key'],
  ['expired', 'the answer is past its nextUpdate'],
  ['future', 'the answer starts in the future'],
  ['mismatch', 'the answer is for another certificate'],
  ['garbage', 'the answer is not DER'],
] as const) {
  t.test(`onUnavailable decides when ${why}`, async (t) => {
    const deny = await setup(t, '  ocsp: { mode: prefer, onUnavailable: deny }');
    deny.responder.setMode(mode);
    const cert = await deny.leaf(`unavailable-${mode}`);
    const r = await get(deny.gw.port, cert, deny.pki);
    t.equal(r.status, 401, 'deny: refused');
    t.match(r.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN' } });
    t.ok(deny.gw.logs.some((l) => l['event'] === 'ocsp-lookup' && l['status'] === 'unavailable'), 'the failure is logged');

    const allow = await setup(t, '  ocsp: { mode: prefer, onUnavailable: allow }');
    allow.responder.setMode(mode);
    const cert2 = await allow.leaf(`allowed-${mode}`);
    const a = await get(allow.gw.port, cert2, allow.pki);
    t.equal(a.status, 200, 'allow: admitted on the CRLs');
  });
}

t.test('a slow responder is cut at the timeout and onUnavailable applies', async (t) => {
  const { pki, responder, gw, leaf } = await setup(t, '  ocsp: { mode: prefer, timeout: 300ms }');
  responder.setMode('slow', { delayMs: 3_000 });
  const cert = await leaf('slow');
  const r = await get(gw.port, cert, pki);
  t.equal(r.status, 401);
  t.match(gw.logs.find((l) => l['event'] === 'ocsp-lookup' && l['status'] === 'unavailable'), { reason: /within 300 ms/ });
});

t.test('a revocation published while a keep-alive connection is open closes it at the refresh', async (t) => {
  const { pki, responder, gw, leaf } = await setup(t, '  ocsp: { mode: prefer }', { validityMs: 2_000 });
  const cert = await leaf('keepalive');
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.root.certPem, cert: cert.chainPem, key: cert.keyPem });
  t.teardown(() => agent.destroy());
  const first = await request(gw.port, null, '', { path: '/orders/1', agent });
  t.equal(first.status, 200);
  responder.setStatus(cert.serial, 'revoked', { reason: 'keyCompromise' });
  // The answer lives 2 s; it is fetched again at 1.5 s because the connection is open.
  await closed(first.socket, 6_000);
  t.ok(first.socket.destroyed, 'the gateway closed the live connection');
  t.match(gw.logs.find((l) => l['event'] === 'client-revoked' && l['when'] === 'live-connection'), { code: 'GW_ERR_CLIENT_CERT_REVOKED', source: 'ocsp' });
  const again = await request(gw.port, null, '', { path: '/orders/2', agent });
  t.equal(again.status, 401);
});

t.test('over HTTP/2: the first stream waits for the lookup, and a revocation at refresh is GOAWAY INADEQUATE_SECURITY', async (t) => {
  const { pki, responder, gw, leaf } = await setup(t, '  ocsp: { mode: prefer }', { validityMs: 2_000 });
  const cert = await leaf('h2');
  responder.setMode('slow', { delayMs: 300 });
  const session = await h2connect(gw.port, cert, pki.root.certPem);
  t.teardown(() => session.destroy());
  const first = await h2request(session, { path: '/orders/1' });
  t.equal(first.status, 200, 'admitted once the answer arrived');
  responder.setMode('normal');
  const goaway = goawayOf(session);
  responder.setStatus(cert.serial, 'revoked');
  t.equal(await goaway, constants.NGHTTP2_INADEQUATE_SECURITY);
});

t.test('reloads: an unchanged tls.ocsp keeps its cache, a bad one is refused, mode off stops asking', async (t) => {
  const { pki, dir, responder, gw, leaf } = await setup(t, '  ocsp: { mode: prefer }');
  const cert = await leaf('reload');
  t.equal((await get(gw.port, cert, pki)).status, 200);
  t.equal(responder.requests, 1);
  const yamlFile = path.join(dir, 'gateway.yaml');
  const yaml = await readFile(yamlFile, 'utf8');
  t.match(await gw.gateway.reload('test'), { result: 'success' });
  t.equal((await get(gw.port, cert, pki)).status, 200);
  t.equal(responder.requests, 1, 'the reload kept the answers');
  await writeFile(yamlFile, yaml.replace('  ocsp: { mode: prefer }', '  ocsp: { mode: prefer, responders: [{ issuer: { NOPE: x }, url: "http://127.0.0.1:1" }] }'));
  const refused = await gw.gateway.reload('test');
  t.match(refused, { result: 'failure' }, 'a responder selector naming an unknown DN attribute refuses the reload');
  t.equal((await get(gw.port, cert, pki)).status, 200, 'the running state stays in force');
  responder.setStatus(cert.serial, 'revoked');
  await writeFile(yamlFile, yaml.replace('  ocsp: { mode: prefer }', '  ocsp: { mode: off }'));
  t.match(await gw.gateway.reload('test'), { result: 'success' });
  t.equal((await get(gw.port, cert, pki)).status, 200, 'mode off: the CRLs alone decide');
  t.equal(responder.requests, 1, 'and OCSP is not asked');
  t.same(gw.gateway.status().ocsp, []);
});

t.test('nonce: sent and required echoed when tls.ocsp.nonce is true', async (t) => {
  const { pki, responder, gw, leaf } = await setup(t, '  ocsp: { mode: prefer, nonce: true }');
  const cert = await leaf('nonce');
  t.equal((await get(gw.port, cert, pki)).status, 200);
  t.ok(responder.lastRequest?.nonce, 'the request carried a nonce');
  responder.setMode('no-nonce');
  const cert2 = await leaf('nonce-dropped');
  t.equal((await get(gw.port, cert2, pki)).status, 401, 'an answer without the nonce does not count');
});

function closed(socket: TLSSocket, ms: number): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve();
    const timer = setTimeout(() => reject(new Error(`connection still open after ${ms} ms`)), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
