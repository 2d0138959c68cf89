// tls.stapling: the gateway fetches the OCSP answer for its own server certificate from the
// certificate's AIA responder (the test's own, signing with the intermediate CA's key) and staples
// it for clients that ask (requestOCSP). Only a verified, current, "good" answer is stapled: a
// responder that says revoked, sends an expired answer, garbage or nothing leaves the handshake
// without a staple, and the gateway keeps serving. Stapling that cannot work (no AIA URL) is
// logged once and staples nothing.
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import type { Issued } from '../../src/pki/dev-pki.js';
import { certIdFor } from '../../src/revocation/ocsp-request.js';
import { verifyOcspResponse } from '../../src/revocation/ocsp-response.js';
import { makeTestPki, startStack } from '../helpers/harness.js';
import { issueLeafWithOcsp, startOcspResponder, type OcspResponderMode } from '../helpers/ocsp-responder.js';

const pki = await makeTestPki();
const responder = await startOcspResponder({ issuerCertPem: pki.intermediate.certPem, issuerKeyPem: pki.intermediate.keyPem });
t.teardown(() => responder.close());
const issuer = new X509Certificate(pki.intermediate.certPem);
const server = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn: 'gateway', dns: ['localhost'], usage: 'server' });
const STAPLING = '  stapling: { enabled: true, refresh: 1h }';

/** A gateway presenting `cert` (with its chain) and stapling enabled; no CRLs. */
async function gatewayWith(t: Test, cert: Issued) {
  const stack = await startStack({
    pki,
    crlYaml: STAPLING,
    beforeStart: async (dir) => {
      await writeFile(path.join(dir, 'gateway.crt'), cert.chainPem);
      await writeFile(path.join(dir, 'gateway.key'), cert.keyPem);
    },
  });
  t.teardown(() => stack.close());
  return stack;
}

type Stack = Awaited<ReturnType<typeof gatewayWith>>;

/** Waits (bounded) until the stapler's first fetch has a result. */
async function settled(stack: Stack) {
  for (let i = 0; i < 200; i++) {
    const s = stack.gw.gateway.status().stapling;
    if (s !== null && s.status !== 'pending' && s.status !== 'disabled') return s;
    await sleep(10);
  }
  throw new Error('the stapler did not settle');
}

/** One handshake asking for a staple (status_request); resolves with what the gateway stapled. */
function handshake(port: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    let staple: Buffer | null = null;
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      // The bundle, so that a server sending its leaf alone is still verified.
      ca: pki.caBundlePem,
      cert: pki.clients['billing']!.chainPem,
      key: pki.clients['billing']!.keyPem,
      // Node's TLSSocket option, missing from ConnectionOptions' type.
      requestOCSP: true,
    } as tls.ConnectionOptions);
    socket.once('OCSPResponse', (res: Buffer | null) => (staple = res));
    socket.once('secureConnect', () => {
      socket.end();
      resolve(staple);
    });
    socket.once('error', reject);
  });
}

t.test('a good answer is stapled, verifies, and is shown in /status and /metrics', async (t) => {
  responder.setMode('normal');
  const stack = await gatewayWith(t, server);
  const state = await settled(stack);
  t.match(state, { enabled: true, url: responder.url, status: 'good', thisUpdate: String, nextUpdate: String, lastError: null });

  const staple = await handshake(stack.gw.port);
  t.ok(staple && staple.length > 0, 'the client received a stapled answer');
  const check = verifyOcspResponse(staple!, { certId: certIdFor(server.der, issuer), issuer, now: Date.now(), nonce: null });
  t.match(check, { ok: true, answer: { status: 'good', signer: 'issuer' } }, 'it is a verified good answer for the server certificate');

  const again = await handshake(stack.gw.port);
  t.same(again, staple, 'later handshakes get the same answer');
  t.equal(responder.requests, 1, 'one fetch serves every handshake');
  t.equal((await stack.send(pki.clients['billing']!, { path: '/orders/1' })).status, 200, 'requests are served as usual');
  t.match(await stack.gw.gateway.metrics.text(), /mtls_gateway_ocsp_staple_refreshes_total\{result="good"\} 1/);
});

for (const [label, mode, status] of [
  ['says revoked', 'normal', 'revoked'],
  ['sends an expired answer', 'expired', 'unavailable'],
  ['signs with the wrong key', 'wrong-signer', 'unavailable'],
  ['sends garbage', 'garbage', 'unavailable'],
  ['is down', 'down', 'unavailable'],
] as const satisfies ReadonlyArray<readonly [string, OcspResponderMode, string]>) {
  t.test(`nothing is stapled when the responder ${label}, and the gateway still serves`, async (t) => {
    const cert = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn: 'gateway', dns: ['localhost'], usage: 'server' });
    if (status === 'revoked') responder.setStatus(cert.serial, 'revoked', { revokedAt: new Date(Date.now() - 60_000), reason: 'keyCompromise' });
    responder.setMode(mode);
    t.teardown(() => responder.setMode('normal'));
    const stack = await gatewayWith(t, cert);
    const state = await settled(stack);
    t.match(state, { enabled: true, status, thisUpdate: null, nextUpdate: null, lastError: String });
    t.equal(await handshake(stack.gw.port), null, 'no staple');
    t.equal((await stack.send(pki.clients['billing']!, { path: '/orders/1' })).status, 200, 'requests are served');
    t.ok(stack.gw.logs.some((l) => l['event'] === 'ocsp-staple-refreshed' && l['result'] === status && l['level'] === 40), 'the failed refresh is logged as a warning');
  });
}

t.test('a server certificate without an AIA OCSP URL: logged once, nothing stapled; a reload to one that has it staples', async (t) => {
  responder.setMode('normal');
  const stack = await gatewayWith(t, pki.gatewayServer);
  const state = await settled(stack);
  t.match(state, { enabled: true, url: null, status: 'no-responder', lastError: /names no OCSP responder/ });
  t.equal(await handshake(stack.gw.port), null);
  t.match(await stack.gw.gateway.reload('test'), { result: 'success' });
  t.equal(stack.gw.logs.filter((l) => l['event'] === 'ocsp-stapling-unavailable').length, 1, 'warned once');

  await writeFile(path.join(stack.dir, 'gateway.crt'), server.chainPem);
  await writeFile(path.join(stack.dir, 'gateway.key'), server.keyPem);
  t.match(await stack.gw.gateway.reload('test'), { result: 'success' });
  t.match(await settled(stack), { status: 'good', url: responder.url });
  const staple = await handshake(stack.gw.port);
  t.match(verifyOcspResponse(staple!, { certId: certIdFor(server.der, issuer), issuer, now: Date.now(), nonce: null }), { ok: true, answer: { status: 'good' } }, 'the new certificate\'s answer is stapled');
});

t.test('a tls.cert without its issuer cannot be stapled', async (t) => {
  const leafOnly = { ...server, chainPem: server.certPem };
  const stack = await gatewayWith(t, leafOnly);
  t.match(await settled(stack), { status: 'no-issuer', url: null });
  t.match(stack.gw.logs.find((l) => l['event'] === 'ocsp-stapling-unavailable'), { reason: 'no-issuer', level: 40 });
  t.equal(await handshake(stack.gw.port), null);
});

t.test('stapling disabled (the default): no staple, status says so', async (t) => {
  const stack = await startStack({ pki, crl: false });
  t.teardown(() => stack.close());
  t.match(stack.gw.gateway.status().stapling, { enabled: false, status: 'disabled' });
  t.equal(await handshake(stack.gw.port), null);
});

t.test('stapling off costs a handshake nothing: no OCSPRequest listener, so no certificate-callback round trip; reloads turn it on and off', async (t) => {
  responder.setMode('normal');
  const stack = await startStack({
    pki,
    crlYaml: '  stapling: { enabled: false, refresh: 1h }',
    beforeStart: async (dir) => {
      await writeFile(path.join(dir, 'gateway.crt'), server.chainPem);
      await writeFile(path.join(dir, 'gateway.key'), server.keyPem);
    },
  });
  t.teardown(() => stack.close());
  const srv = stack.gw.gateway.app.server;
  // Node enables OpenSSL's certificate callback, a pause of every handshake for a call into
  // JavaScript, on each connection of a server with an 'OCSPRequest' listener.
  t.equal(srv.listenerCount('OCSPRequest'), 0, 'disabled: no listener');
  t.equal(await handshake(stack.gw.port), null, 'disabled: nothing stapled');

  const file = path.join(stack.dir, 'gateway.yaml');
  const disabled = await readFile(file, 'utf8');
  await writeFile(file, disabled.replace('stapling: { enabled: false', 'stapling: { enabled: true'));
  t.match(await stack.gw.gateway.reload('test'), { result: 'success' });
  t.match(await settled(stack), { status: 'good', url: responder.url });
  t.equal(srv.listenerCount('OCSPRequest'), 1, 'enabled by a reload: one listener');
  const staple = await handshake(stack.gw.port);
  t.ok(staple !== null, 'enabled by a reload: a staple');
  t.match(verifyOcspResponse(staple!, { certId: certIdFor(server.der, issuer), issuer, now: Date.now(), nonce: null }), { ok: true, answer: { status: 'good' } });
  t.match(await stack.gw.gateway.reload('test'), { result: 'success' });
  t.equal(srv.listenerCount('OCSPRequest'), 1, 'a reload that keeps it on adds no second listener');

  await writeFile(file, disabled);
  t.match(await stack.gw.gateway.reload('test'), { result: 'success' });
  t.equal(srv.listenerCount('OCSPRequest'), 0, 'disabled again: the listener is gone');
  t.equal(await handshake(stack.gw.port), null, 'disabled again: nothing stapled');
});
