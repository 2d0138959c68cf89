// Security: a resumed upstream TLS session skips every certificate check in the handshake (Node
// calls no checkServerIdentity and reports no peer certificate), so resumption must never carry a
// request to an upstream the gateway would refuse on a full handshake. This pins:
// - a CRL update revoking the upstream: 502 GW_ERR_UPSTREAM_CERT_REVOKED, nothing forwarded; the
//   renewed pool offers no old session, and a connector of the old pool (as one draining its
//   queue would use) that resumes is refused on the chain it remembered, under the new CRL;
// - a pin that the remembered certificate fails refuses the resumed connection;
// - with upstream OCSP, a resumed connection (which carries no staple and reports no certificate)
//   is judged by the OCSP store on the remembered chain: admitted while good, refused once revoked;
// - an expired-since certificate: its session is dropped, never resumed, and refused if it
//   expires during the handshake;
// - a session is never offered to another target, even one sharing ticket keys (its own
//   certificate is checked in a full handshake), nor under another server name;
// - garbage or truncated session data costs a full handshake, never a crash.
import { randomBytes, X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls, { type PeerCertificate, type TLSSocket } from 'node:tls';
import t, { type Test } from 'tap';
import pino from 'pino';
import type { UpstreamConfig } from '../../src/config/schema.js';
import { createCrl, issueLeaf, type Issued } from '../../src/pki/dev-pki.js';
import type { UpstreamTlsMaterial } from '../../src/pki/gateway-material.js';
import { TargetConnector } from '../../src/proxy/resuming-target-connect.js';
import { UpstreamOcspCheck } from '../../src/proxy/upstream-ocsp.js';
import { createOcspHttpLookup } from '../../src/revocation/ocsp-http-lookup.js';
import { OcspStore } from '../../src/revocation/ocsp-store.js';
import { UpstreamSessionCache, verifiedPeer } from '../../src/proxy/upstream-session-cache.js';
import type { TargetPoolSettings } from '../../src/proxy/upstream-target.js';
import { upstreamIdentityCheck } from '../../src/proxy/upstream-verify.js';
import { replaceFile } from '../helpers/crl-files.js';
import { issueLeafWithOcsp, startOcspResponder } from '../helpers/ocsp-responder.js';
import { gatewayYaml, makeTestPki, request, startGateway, tempDir, writePkiFiles } from '../helpers/harness.js';

const pki = await makeTestPki();
const UPSTREAM_CRL = '      crl: [./up-root.crl.pem, ./up-intermediate.crl.pem]\n      revocation: { pollInterval: 1h }';

/** An mTLS upstream that closes each connection after its answer and records every handshake. */
async function startClosingUpstream(t: Test, server: Issued, ticketKeys?: Buffer) {
  const resumed: boolean[] = [];
  let requests = 0;
  let connections = 0;
  const srv = https.createServer({ key: server.keyPem, cert: server.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true, ...(ticketKeys ? { ticketKeys } : {}) }, (req, res) => {
    requests++;
    req.resume();
    res.writeHead(200, { connection: 'close' });
    res.end('ok');
  });
  srv.on('secureConnection', (s: TLSSocket) => resumed.push(s.isSessionReused()));
  srv.on('connection', () => connections++);
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => (srv.closeAllConnections(), srv.close(() => r()))));
  const port = (srv.address() as AddressInfo).port;
  return { port, origin: `https://127.0.0.1:${port}`, resumed, requests: () => requests, connections: () => connections };
}

function settingsFor(check: TargetPoolSettings['checkServerIdentity'], now: () => number = Date.now): TargetPoolSettings {
  return {
    protocol: 'http1',
    secureContext: tls.createSecureContext({ cert: pki.gatewayClient.chainPem, key: pki.gatewayClient.keyPem, ca: pki.caBundlePem }),
    servername: 'orders.internal',
    checkServerIdentity: check,
    sessionResumption: true,
    now,
    connections: 1,
    connectTimeout: 5_000,
    responseTimeout: 5_000,
    idleTimeout: 5_000,
    keepAlive: 5_000,
  };
}

/** The upstream's identity check as the gateway builds it (servername, pins; no CRLs here). */
function identityCheck(expect?: NonNullable<UpstreamConfig['tls']['expect']>) {
  const cfg = { tls: { servername: 'orders.internal', expect } } as unknown as UpstreamConfig;
  const material = { ca: { certs: [pki.root.certPem, pki.intermediate.certPem].map((p) => new X509Certificate(p)), pems: [] } } as unknown as UpstreamTlsMaterial;
  return upstreamIdentityCheck('orders', cfg, material, null);
}

/**
 * One connection through the connector's undici path: its refusal (or null, once the answer and the
 * tickets before it arrived) and whether the handshake resumed, as the client saw it (a refused
 * connection is destroyed before its last handshake flight is flushed: the server never sees it).
 */
async function attempt(connector: TargetConnector, port: number): Promise<{ refusal: Error | null; resumed: boolean }> {
  let resumed = false;
  const refusal = await new Promise<Error | null>((resolve) => {
    const socket = connector.undici({ hostname: '127.0.0.1', host: `127.0.0.1:${port}`, protocol: 'https:', port: String(port), servername: 'orders.internal' } as never, ((err: Error | null, s: TLSSocket | null) => {
      if (err !== null) return resolve(err);
      s!.on('data', () => undefined);
      s!.once('close', () => resolve(null));
      s!.end('GET / HTTP/1.1\r\nhost: orders.internal\r\nconnection: close\r\n\r\n');
    }) as never) as unknown as TLSSocket;
    socket.once('secureConnect', () => (resumed = socket.isSessionReused()));
  });
  return { refusal, resumed };
}

async function connectOnce(connector: TargetConnector, port: number): Promise<Error | null> {
  return (await attempt(connector, port)).refusal;
}

t.test('a CRL revoking the upstream after a connection: the next one is refused, nothing forwarded, no old session resumed', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  await writeFile(path.join(dir, 'up-root.crl.pem'), pki.rootCrl.pem);
  await writeFile(path.join(dir, 'up-intermediate.crl.pem'), pki.intermediateCrl.pem);
  const up = await startClosingUpstream(t, pki.upstreams['orders']!);
  const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: up.port, upstreamExtra: UPSTREAM_CRL }) });
  t.teardown(() => gw.close());
  const send = () => request(gw.port, pki.clients['billing']!, pki.root.certPem, { path: '/orders' });
  t.equal((await send()).status, 200);
  t.equal((await send()).status, 200);
  t.same(up.resumed, [false, true], 'the second connection resumed');
  const oldConnector = gw.gateway.runtime.current.upstreams.get('orders')!.targets()[0]!.settings.connector!;
  t.ok(oldConnector.sessions > 0, 'the pool holds sessions');

  const crl = await createCrl(pki.intermediate, { revoked: [{ serial: pki.upstreams['orders']!.serial, reason: 'keyCompromise' }], crlNumber: 2 });
  await replaceFile(path.join(dir, 'up-intermediate.crl.pem'), crl.pem);
  await gw.gateway.reload('test');
  const handshakesBefore = up.resumed.length;
  const r = await send();
  t.equal(r.status, 502);
  t.match(r.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_REVOKED' } });
  t.equal(up.requests(), 2, 'the revoked upstream got nothing after the CRL update');
  t.notOk(up.resumed.slice(handshakesBefore).includes(true), 'the renewed pool offered no session verified under the old CRL');

  // A connection the old pool's connector opens (a request still queued on it) resumes, and is
  // judged on the remembered chain under the CRL in force now.
  const old = await attempt(oldConnector, up.port);
  t.equal(old.resumed, true, 'the upstream resumed the old session');
  t.match(old.refusal, { code: 'GW_ERR_UPSTREAM_CERT_REVOKED' }, 'refused with the full handshake\'s code');
  t.equal(oldConnector.sessions, 0, 'the refused chain\'s sessions are forgotten');
  t.equal(up.requests(), 2, 'nothing was forwarded');
});

t.test('a pin the remembered certificate fails refuses the resumed connection', async (t) => {
  const up = await startClosingUpstream(t, pki.upstreams['orders']!);
  let check = identityCheck();
  const connector = new TargetConnector(settingsFor((h, c) => check(h, c)));
  t.equal(await connectOnce(connector, up.port), null);
  t.equal(await connectOnce(connector, up.port), null, 'a matching pin admits the resumed connection');
  const fingerprint = new X509Certificate(pki.upstreams['orders']!.certPem).fingerprint256;
  check = identityCheck({ fingerprint });
  t.equal(await connectOnce(connector, up.port), null, 'the pinned fingerprint matches the remembered certificate');
  check = identityCheck({ fingerprint: 'AA:'.repeat(31) + 'AA' });
  t.match(await attempt(connector, up.port), { refusal: { code: 'GW_ERR_UPSTREAM_IDENTITY_MISMATCH' }, resumed: true }, 'a resumed connection, refused');
  t.equal(connector.sessions, 0, 'the refused chain\'s sessions are forgotten');
  check = identityCheck();
  t.equal(await connectOnce(connector, up.port), null);
  t.same(up.resumed, [false, true, true, false], 'after the refusal, a full handshake');
  t.equal(up.requests(), 4, 'the refused connection carried nothing');
});

t.test('upstream OCSP: a resumed connection is judged by the store on the remembered chain', async (t) => {
  const responder = await startOcspResponder({ issuerCertPem: pki.intermediate.certPem, issuerKeyPem: pki.intermediate.keyPem });
  t.teardown(() => responder.close());
  const leaf = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn: 'orders.internal', usage: 'server', dns: ['orders.internal'] });
  const up = await startClosingUpstream(t, leaf);
  const trust = [pki.intermediate.certPem, pki.root.certPem].map((p) => new X509Certificate(p));
  const lookup = createOcspHttpLookup();
  /** A check over a fresh store: what the upstream's store holds after its answer changed. */
  const freshCheck = () => {
    const store = new OcspStore({ domain: 'upstream orders', timeoutMs: 2_000, maxBytes: 65_536, cacheSize: 16, nonce: false, responderFor: () => responder.url, lookup, logger: pino({ level: 'silent' }), now: Date.now });
    t.teardown(() => store.stop());
    return new UpstreamOcspCheck({ name: 'orders', store, mode: 'prefer', requireStapled: false, onUnavailable: 'deny', trust, now: Date.now });
  };
  const settings: { -readonly [K in keyof TargetPoolSettings]: TargetPoolSettings[K] } = { ...settingsFor(identityCheck()), ocsp: freshCheck() };
  const connector = new TargetConnector(settings);
  t.equal(await connectOnce(connector, up.port), null, 'the full handshake: looked up, good');
  t.match(await attempt(connector, up.port), { refusal: null, resumed: true }, 'resumed: the remembered chain is judged, good');
  responder.setStatus(new X509Certificate(leaf.certPem).serialNumber, 'revoked', { reason: 'keyCompromise' });
  settings.ocsp = freshCheck();
  t.match(await attempt(connector, up.port), { refusal: { code: 'GW_ERR_UPSTREAM_CERT_REVOKED' }, resumed: true }, 'revoked since: the resumed connection is refused');
  t.equal(connector.sessions, 0);
  t.equal(up.requests(), 2, 'the refused connection carried nothing');
});

t.test('a certificate that expired since: never resumed; refused if it expires during the handshake', async (t) => {
  const now = Date.now();
  const shortLived = await issueLeaf(pki.intermediate, { name: 'short', subject: { CN: 'orders.internal' }, dns: ['orders.internal'], usage: 'server', notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) });
  const up = await startClosingUpstream(t, shortLived);
  let clock = now;
  const connector = new TargetConnector(settingsFor(identityCheck(), () => clock));
  t.equal(await connectOnce(connector, up.port), null);
  clock = now + 2 * 3_600_000;
  t.equal(await connectOnce(connector, up.port), null, 'OpenSSL (real time) admits the full handshake');
  t.same(up.resumed, [false, false], 'the expired session was dropped, not offered');
  // Offered while valid, expired by the time the handshake completed.
  clock = now;
  const pending = attempt(connector, up.port).then((a) => (t.equal(a.resumed, true, 'it resumed'), a.refusal));
  clock = now + 2 * 3_600_000;
  t.match(await pending, { code: 'GW_ERR_UPSTREAM_CERT_EXPIRED' });
  t.same(up.resumed, [false, false], 'the refused resumption carried nothing');
  t.equal(connector.sessions, 0, 'its sessions are dropped');
});

t.test('a session is never offered to another target sharing ticket keys: its certificate is checked', async (t) => {
  const keys = randomBytes(48);
  const a = await startClosingUpstream(t, pki.upstreams['orders']!, keys);
  const otherName = await issueLeaf(pki.intermediate, { name: 'payments', subject: { CN: 'payments.internal' }, dns: ['payments.internal'], usage: 'server' });
  const b = await startClosingUpstream(t, otherName, keys);
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: a.port, upstream: `targets: [${a.origin}, ${b.origin}]\nbalance: round-robin\noutlierDetection: { enabled: false }` }) });
  t.teardown(() => gw.close());
  const codes: string[] = [];
  for (let i = 0; i < 8; i++) {
    const r = await request(gw.port, pki.clients['billing']!, pki.root.certPem, { path: `/orders/${i}` });
    codes.push(r.status === 200 ? '200' : String((r.json as { error: { code: string } }).error.code));
  }
  t.ok(b.connections() > 0, 'the gateway did connect to the other target');
  t.equal(b.requests(), 0, 'nothing reached the target whose certificate lacks the name');
  t.notOk(b.resumed.includes(true), 'it never resumed a session');
  t.ok(a.resumed.includes(true), 'the right target resumed its own');
  const [ta, tb] = gw.gateway.runtime.current.upstreams.get('orders')!.targets();
  t.ok(ta!.settings.connector!.sessions > 0, 'sessions are kept per target...');
  t.equal(tb!.settings.connector!.sessions, 0, '...so none of the first target\'s is ever offered to the other');
  t.ok(codes.every((c) => c === '200' || c === 'GW_ERR_UPSTREAM_CERT_NAME_MISMATCH'), codes.join(' '));
});

t.test('sessions are offered under their own server name only', async (t) => {
  const up = await startClosingUpstream(t, pki.upstreams['orders']!);
  const cache = new UpstreamSessionCache();
  const connector = new TargetConnector(settingsFor(identityCheck()), cache);
  t.equal(await connectOnce(connector, up.port), null);
  t.ok(cache.offer('orders.internal', Date.now()), 'kept for orders.internal');
  t.equal(cache.offer('payments.internal', Date.now()), undefined, 'not offered under another name');
});

t.test('garbage, truncated, empty and huge session data never crash and cost a full handshake', async (t) => {
  const up = await startClosingUpstream(t, pki.upstreams['orders']!);
  // A real chain to attach the bad sessions to (the cache keeps only what Node gave; this forges it).
  const real = new UpstreamSessionCache();
  const probe = new TargetConnector(settingsFor(identityCheck()), real);
  t.equal(await connectOnce(probe, up.port), null);
  const good = real.offer('orders.internal', Date.now())!;
  const peer = verifiedPeer('orders.internal', good.peer.cert)!;
  for (const [what, bytes] of [
    ['garbage', randomBytes(300)],
    ['truncated', good.session.subarray(0, Math.floor(good.session.length / 2))],
    ['one byte', Buffer.from([0x30])],
    ['an ASN.1 header claiming 4 GB', Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff])],
  ] as const) {
    const cache = new UpstreamSessionCache();
    cache.remember(bytes, peer);
    t.equal(cache.size, 1);
    const connector = new TargetConnector(settingsFor(identityCheck()), cache);
    const before = up.resumed.length;
    t.equal(await connectOnce(connector, up.port), null, `${what}: the connection works`);
    t.same(up.resumed.slice(before), [false], `${what}: a full handshake`);
    t.equal(cache.peerOf(bytes), undefined, `${what}: forgotten once declined`);
  }
  const cache = new UpstreamSessionCache();
  cache.remember(Buffer.alloc(0), peer);
  cache.remember(Buffer.alloc(1024 * 1024), peer);
  t.equal(cache.size, 0, 'empty and huge sessions are not kept');
  for (let i = 0; i < 100; i++) cache.remember(randomBytes(64), peer);
  t.equal(cache.size, 8, 'bounded');
  const unchecked = { ...good.peer.cert, valid_to: 'not a date' } as PeerCertificate;
  t.equal(verifiedPeer('orders.internal', unchecked as never), null, 'a chain whose dates cannot be read is never kept');
});
