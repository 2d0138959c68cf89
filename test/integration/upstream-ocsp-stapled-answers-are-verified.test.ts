// upstreams.<name>.tls.ocsp: every upstream connection asks for a stapled OCSP answer. A staple is
// verified against the upstream leaf's issuer (from upstreams.<name>.tls.ca) and used instead of a
// lookup: good passes, revoked is refused (502) before any request is forwarded, a staple that does
// not verify is "unavailable" (onUnavailable decides). requireStapled refuses an upstream without a
// staple; without one, prefer looks the certificate up at its AIA responder and require refuses
// when there is none. The same holds for connections the gateway opens itself (protocol: http2,
// WebSocket tunnels).
import { createPrivateKey, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import type { Issued } from '../../src/pki/dev-pki.js';
import { certIdFor } from '../../src/revocation/ocsp-request.js';
import type { OcspCertStatus } from '../../src/revocation/ocsp-response.js';
import { gatewayYaml, makeTestPki, request, startGateway, tempDir, writePkiFiles } from '../helpers/harness.js';
import { buildOcspResponse, issueLeafWithOcsp, startOcspResponder } from '../helpers/ocsp-responder.js';
import { nextMessage, startWebSocketStack } from '../helpers/websocket-stack.js';

const pki = await makeTestPki();
const issuer = new X509Certificate(pki.intermediate.certPem);
const issuerKey = createPrivateKey(pki.intermediate.keyPem);
const rogueKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const responder = await startOcspResponder({ issuerCertPem: pki.intermediate.certPem, issuerKeyPem: pki.intermediate.keyPem });
t.teardown(() => responder.close());
const BILLING = pki.clients['billing']!;

/** What the upstream staples: a status signed by `key` (the issuer's, unless a forgery), or nothing. */
type StapleSpec = { status: OcspCertStatus; key?: KeyObject; forLeaf?: Issued } | { raw: Buffer } | null;

function stapleFor(leaf: Issued, spec: StapleSpec): Buffer | undefined {
  if (spec === null) return undefined;
  if ('raw' in spec) return spec.raw;
  const now = Math.floor(Date.now() / 1000) * 1000;
  return buildOcspResponse({
    signerKey: spec.key ?? issuerKey,
    responderCertDer: issuer.raw,
    producedAt: new Date(now),
    answers: [{ certId: certIdFor((spec.forLeaf ?? leaf).der, issuer), status: spec.status, revokedAt: new Date(now - 60_000), thisUpdate: new Date(now), nextUpdate: new Date(now + 3600_000) }],
  });
}

/**
 * An mTLS upstream (HTTP/2 with HTTP/1.1 allowed, so both the pools and the gateway's own HTTP/2
 * connections reach it) whose 'OCSPRequest' handler staples `staple`.
 */
async function startStaplingUpstream(t: Test, leaf: Issued) {
  const state = { staple: null as StapleSpec, requests: 0, stapleAsks: 0 };
  const srv = http2.createSecureServer({ key: leaf.keyPem, cert: leaf.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true, allowHTTP1: true }, (_req, res) => {
    state.requests++;
    res.end('ok');
  });
  srv.on('OCSPRequest', (_cert: Buffer, _issuer: Buffer, done: (err: Error | null, res?: Buffer) => void) => {
    state.stapleAsks++;
    done(null, stapleFor(leaf, state.staple));
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => srv.close(() => resolve())));
  return { state, port: (srv.address() as AddressInfo).port };
}

const withAia = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn: 'orders.internal', dns: ['orders.internal', 'localhost'], usage: 'server' });
const withoutAia = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [], cn: 'orders.internal', dns: ['orders.internal', 'localhost'], usage: 'server' });

async function gatewayFor(t: Test, port: number, ocsp: string, protocol: 'http1' | 'http2' = 'http1') {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const gw = await startGateway({
    dir,
    yaml: gatewayYaml({ upstreamPort: port, crl: false, upstream: `url: https://127.0.0.1:${port}\nprotocol: ${protocol}`, upstreamExtra: `      ocsp: ${ocsp}` }),
  });
  t.teardown(() => gw.close());
  return gw;
}

function get(port: number) {
  return request(port, BILLING, pki.root.certPem, { path: '/orders/1' });
}

t.test('a good staple passes and is used instead of a lookup', async (t) => {
  const up = await startStaplingUpstream(t, withAia);
  up.state.staple = { status: 'good' };
  const gw = await gatewayFor(t, up.port, '{ mode: require }');
  const before = responder.requests;
  t.equal((await get(gw.port)).status, 200);
  t.equal(up.state.requests, 1);
  t.ok(up.state.stapleAsks >= 1, 'the gateway asked for a staple');
  t.equal(responder.requests, before, 'no lookup: the staple answered');
});

t.test('a revoked staple refuses the upstream: 502, never forwarded', async (t) => {
  const up = await startStaplingUpstream(t, withAia);
  up.state.staple = { status: 'revoked' };
  const gw = await gatewayFor(t, up.port, '{ mode: prefer }');
  const r = await get(gw.port);
  t.equal(r.status, 502);
  t.match(r.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_REVOKED' } });
  t.equal(up.state.requests, 0, 'nothing reached the upstream');
  t.match(gw.logs.find((l) => l['code'] === 'GW_ERR_UPSTREAM_CERT_REVOKED'), {}, 'the refusal is logged');
  t.match(JSON.stringify(gw.logs.filter((l) => l['code'] === 'GW_ERR_UPSTREAM_CERT_REVOKED')), /OCSP: revoked/, 'naming OCSP');
});

t.test('an unknown staple is refused in every mode', async (t) => {
  const up = await startStaplingUpstream(t, withAia);
  up.state.staple = { status: 'unknown' };
  const gw = await gatewayFor(t, up.port, '{ mode: prefer, onUnavailable: allow }');
  const r = await get(gw.port);
  t.equal(r.status, 502);
  t.match(r.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN' } });
  t.equal(up.state.requests, 0);
});

t.test('requireStapled refuses an upstream that staples nothing, even with a responder', async (t) => {
  const up = await startStaplingUpstream(t, withAia);
  const gw = await gatewayFor(t, up.port, '{ mode: off, requireStapled: true }');
  const r = await get(gw.port);
  t.equal(r.status, 502);
  t.match(r.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN' } });
  t.equal(up.state.requests, 0);
  up.state.staple = { status: 'good' };
  t.equal((await get(gw.port)).status, 200, 'a staple is enough');
});

t.test('no staple, mode prefer: the AIA responder is asked, and its answer decides', async (t) => {
  const up = await startStaplingUpstream(t, withAia);
  const gw = await gatewayFor(t, up.port, '{ mode: prefer }');
  const before = responder.requests;
  t.equal((await get(gw.port)).status, 200);
  t.equal(responder.requests, before + 1, 'one lookup');
  t.match(gw.gateway.status().ocsp, [{ domain: 'upstream orders', mode: 'prefer', lookups: 1 }]);

  const revokedLeaf = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn: 'orders.internal', dns: ['orders.internal', 'localhost'], usage: 'server' });
  responder.setStatus(revokedLeaf.serial, 'revoked');
  const up2 = await startStaplingUpstream(t, revokedLeaf);
  const gw2 = await gatewayFor(t, up2.port, '{ mode: prefer }');
  const r = await get(gw2.port);
  t.equal(r.status, 502);
  t.match(r.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_REVOKED' } });
  t.equal(up2.state.requests, 0);
});

t.test('no staple and no responder: require refuses, prefer passes', async (t) => {
  const up = await startStaplingUpstream(t, withoutAia);
  const strict = await gatewayFor(t, up.port, '{ mode: require }');
  const r = await get(strict.port);
  t.equal(r.status, 502);
  t.match(r.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN' } });
  const lenient = await gatewayFor(t, up.port, '{ mode: prefer }');
  t.equal((await get(lenient.port)).status, 200);
  t.equal(up.state.requests, 1);
});

t.test('a staple signed by the wrong key: refused under deny, admitted and logged under allow', async (t) => {
  const up = await startStaplingUpstream(t, withAia);
  up.state.staple = { status: 'good', key: rogueKey };
  const deny = await gatewayFor(t, up.port, '{ mode: prefer, onUnavailable: deny }');
  const r = await get(deny.port);
  t.equal(r.status, 502);
  t.match(r.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN' } });
  t.equal(up.state.requests, 0);
  const allow = await gatewayFor(t, up.port, '{ mode: prefer, onUnavailable: allow }');
  t.equal((await get(allow.port)).status, 200);
  t.match(allow.logs.find((l) => l['event'] === 'upstream-ocsp-fail-open'), { upstream: 'orders', reason: /bad-signature/ });
});

t.test('hostile staples are refused under deny, and the gateway survives them', async (t) => {
  const up = await startStaplingUpstream(t, withAia);
  const gw = await gatewayFor(t, up.port, '{ mode: prefer, onUnavailable: deny }');
  const valid = stapleFor(withAia, { status: 'good' })!;
  const unknown = 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN';
  const hostile: Array<[string, Buffer, RegExp]> = [
    ['garbage', Buffer.from('this is not an OCSP response'), new RegExp(unknown)],
    ['truncated', valid.subarray(0, valid.length - 7), new RegExp(unknown)],
    ['trailing bytes', Buffer.concat([valid, Buffer.from([0, 0])]), new RegExp(unknown)],
    // OpenSSL itself refuses a handshake message this large, before the gateway sees the staple.
    ['huge (300 KiB)', Buffer.concat([valid, Buffer.alloc(300 * 1024)]), new RegExp(`${unknown}|GW_ERR_UPSTREAM_TLS`)],
    ['nested too deep', Buffer.concat([...Array.from({ length: 2000 }, () => Buffer.from([0x30, 0x80]))]), new RegExp(unknown)],
    ['a good answer for another certificate', stapleFor(withAia, { status: 'good', forLeaf: withoutAia })!, new RegExp(unknown)],
  ];
  for (const [label, raw, code] of hostile) {
    up.state.staple = { raw };
    const r = await get(gw.port);
    t.equal(r.status, 502, label);
    t.match(r.json, { error: { code } }, label);
  }
  t.equal(up.state.requests, 0, 'nothing was forwarded');
  up.state.staple = { status: 'good' };
  t.equal((await get(gw.port)).status, 200, 'a good staple afterwards passes');
});

t.test('the gateway\'s own HTTP/2 connections are judged the same way', async (t) => {
  const up = await startStaplingUpstream(t, withAia);
  up.state.staple = { status: 'revoked' };
  const gw = await gatewayFor(t, up.port, '{ mode: prefer }', 'http2');
  const r = await get(gw.port);
  t.equal(r.status, 502);
  t.match(r.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_REVOKED' } });
  t.equal(up.state.requests, 0, 'no stream was opened');
  up.state.staple = null;
  t.equal((await get(gw.port)).status, 200, 'without a staple the lookup (good) admits it: bytes the upstream sent meanwhile are not lost');
  t.equal(up.state.requests, 1);
});

t.test('WebSocket tunnels are judged before the upgrade is sent', async (t) => {
  const open = await startWebSocketStack({ upstreamExtra: '      ocsp: { mode: prefer }' });
  t.teardown(() => open.close());
  const ws = await open.connect(open.pki.clients['billing']!, '/ws/echo');
  const echoed = nextMessage(ws);
  ws.send('hello');
  t.equal((await echoed).toString(), 'hello', 'no responder known, prefer: the tunnel works');

  const strict = await startWebSocketStack({ upstreamExtra: '      ocsp: { mode: off, requireStapled: true }' });
  t.teardown(() => strict.close());
  const refused = await strict.connect(strict.pki.clients['billing']!, '/ws/echo').then(() => null, (err: unknown) => err);
  t.match(refused, { status: 502, body: /GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN/ });
  t.equal(strict.upstream.upgrades.length, 0, 'the upgrade never reached the upstream');
});
