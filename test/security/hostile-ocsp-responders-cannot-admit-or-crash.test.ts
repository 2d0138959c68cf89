// Pins a security decision: the OCSP responder is a network peer, not a trusted party. Whatever a
// hostile or broken one sends (a body far over tls.ocsp.maxBytes, a body that never ends, a redirect
// to a responder that would say "good", another certificate's genuine "good" answer replayed, a
// "good" signed by another CA's key, or a delegated signer another CA issued), no client is
// admitted on it under onUnavailable: deny, the gateway keeps serving, and a burst of connections
// during the outage costs one lookup.
import { createPrivateKey, createHash, X509Certificate } from 'node:crypto';
import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import t, { type Test } from 'tap';
import { createRootCa, createIntermediateCa } from '../../src/pki/dev-pki.js';
import { certificateKeyHash } from '../../src/revocation/ocsp-request.js';
import { walkCertificate } from '../../src/x509/cert-fields.js';
import { gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles, type TestPki } from '../helpers/harness.js';
import { buildOcspResponse, decodeGetPath, issueLeafWithOcsp, issueOcspResponderCert, parseOcspRequest } from '../helpers/ocsp-responder.js';
import { guardProcess } from '../helpers/process-guard.js';

const SPIFFE = 'spiffe://example.org/ns/default/sa/billing';

type Handler = (res: ServerResponse, serialDer: Buffer) => void;

/**
 * A responder whose answer the test scripts; it counts requests and hands the handler the serial
 * the request asks about, read by the helpers' DER parser. (It used to take the first INTEGER tag
 * with a plausible length in the raw bytes, which the random issuerKeyHash before the serial holds
 * in about one run in two hundred: the honest answer then named another serial and was refused.)
 */
async function hostileResponder(t: Test) {
  let handler: Handler = (res) => res.end();
  let requests = 0;
  const sockets = new Set<Socket>();
  const srv = createServer((req, res) => {
    requests++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let serialDer: Buffer = Buffer.alloc(1);
      try {
        const body = req.method === 'GET' ? decodeGetPath(req.url!) : Buffer.concat(chunks);
        serialDer = parseOcspRequest(body).certIds[0]?.serialDer ?? serialDer;
      } catch {
        /* not an OCSPRequest: answered for serial 0 */
      }
      handler(res, serialDer);
    });
  });
  srv.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  t.teardown(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  );
  return {
    url: `http://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    set(h: Handler) {
      handler = h;
    },
    get requests() {
      return requests;
    },
  };
}

function issuerId(pki: TestPki) {
  const der = new X509Certificate(pki.intermediate.certPem).raw;
  const layout = walkCertificate(der);
  return { issuerNameHash: createHash('sha1').update(der.subarray(layout.subject.start, layout.subject.end)).digest(), issuerKeyHash: certificateKeyHash(der) };
}

t.test('hostile responder answers never admit a client, and the gateway keeps serving', async (t) => {
  const guard = guardProcess();
  t.teardown(() => guard.dispose());
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const responder = await hostileResponder(t);
  const upstream = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => upstream.close());
  const gw = await startGateway({ dir, yaml: gatewayYaml({ upstreamPort: upstream.port }).replace('tls:\n', 'tls:\n  ocsp: { mode: prefer, onUnavailable: deny, timeout: 500ms, maxBytes: 4096 }\n') });
  t.teardown(() => gw.close());

  const id = issuerId(pki);
  const interKey = createPrivateKey(pki.intermediate.keyPem);
  const interDer = new X509Certificate(pki.intermediate.certPem).raw;
  const now = Date.now();
  const good = (serialDer: Buffer, signerKey = interKey, signerDer = interDer, certs: Buffer[] = []) =>
    buildOcspResponse({ signerKey, responderCertDer: signerDer, certs, producedAt: new Date(now), answers: [{ certId: { ...id, serialDer }, status: 'good', thisUpdate: new Date(now - 1000), nextUpdate: new Date(now + 3_600_000) }] });
  const send = (res: ServerResponse, body: Buffer) => {
    res.writeHead(200, { 'content-type': 'application/ocsp-response' });
    res.end(body);
  };

  const otherRoot = await createRootCa({ name: 'other-root', subject: { CN: 'Other Root' } });
  const otherInter = await createIntermediateCa(otherRoot, { name: 'other-inter', subject: { CN: 'Other Intermediate' } });
  const foreignDelegate = await issueOcspResponderCert(otherInter, { ocspSigning: true });
  const another = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn: 'another' });
  const anotherSerial = Buffer.from(another.serial, 'hex');

  const cases: Array<[string, Handler]> = [
    ['a body far over maxBytes', (res) => send(res, Buffer.alloc(10 * 1024 * 1024, 0x30))],
    [
      'a body that never ends',
      (res) => {
        res.writeHead(200, { 'content-type': 'application/ocsp-response' });
        const drip = setInterval(() => (res.destroyed ? clearInterval(drip) : res.write(Buffer.from([0x30]))), 50);
        res.on('close', () => clearInterval(drip));
      },
    ],
    [
      'a redirect to a responder that would say good',
      (res) => {
        res.writeHead(302, { location: `${responder.url}/elsewhere` });
        res.end();
      },
    ],
    ["another certificate's genuine good answer, replayed", (res) => send(res, good(anotherSerial))],
    ['a good answer signed by another CA', (res, serial) => send(res, good(serial, createPrivateKey(otherInter.keyPem), new X509Certificate(otherInter.certPem).raw))],
    ['a good answer from a delegated signer another CA issued', (res, serial) => send(res, good(serial, createPrivateKey(foreignDelegate.keyPem), new X509Certificate(foreignDelegate.certPem).raw, [new X509Certificate(foreignDelegate.certPem).raw]))],
    ['an HTTP 500 with a good answer in the body', (res, serial) => res.writeHead(500).end(good(serial))],
    ['an empty 200', (res) => send(res, Buffer.alloc(0))],
  ];
  let n = 0;
  for (const [what, handler] of cases) {
    responder.set(handler);
    const cert = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn: `hostile-${n++}`, uris: [SPIFFE] });
    const before = upstream.seen.length;
    const r = await request(gw.port, cert, pki.root.certPem, { path: '/orders/1' });
    t.equal(r.status, 401, `${what}: refused`);
    t.match(r.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN' } }, what);
    t.equal(upstream.seen.length, before, `${what}: nothing reached the upstream`);
  }
  // The honest answer for a certificate still admits: the refusals above were the answers' doing.
  responder.set((res, serial) => send(res, good(serial)));
  const honest = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn: 'honest', uris: [SPIFFE] });
  t.equal((await request(gw.port, honest, pki.root.certPem, { path: '/orders/1' })).status, 200, 'an honest good answer admits');

  // A burst during an outage: one lookup for the certificate, every connection refused, no crash.
  responder.set(() => undefined); // never answers: the 500 ms deadline ends it
  const burst = await issueLeafWithOcsp(pki.intermediate, { ocspUrls: [responder.url], cn: 'burst', uris: [SPIFFE] });
  const before = responder.requests;
  const answers = await Promise.all(Array.from({ length: 30 }, () => request(gw.port, burst, pki.root.certPem, { path: '/orders/1' })));
  t.ok(answers.every((a) => a.status === 401), 'every connection of the burst refused');
  t.equal(responder.requests - before, 1, 'one lookup for the whole burst');
  t.equal((await request(gw.port, pki.clients['billing']!, pki.root.certPem, { path: '/orders/1' })).status, 200, 'a client without a responder is still served (prefer: CRLs decide)');
  t.same(guard.faults, [], 'no uncaught exception or unhandled rejection');
});
