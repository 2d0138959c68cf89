// forwardClientCert (issue 12): the upstream receives RFC 9440 Client-Cert and Client-Cert-Chain
// when configured, globally or per route, and they decode to exactly the DER of the client's
// certificate and of the intermediate the gateway verified it through (the root left out). XFCC
// stays the default and can be turned off per route. Real TLS, PKI generated in the run.
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type { IncomingHttpHeaders } from 'node:http';
import path from 'node:path';
import tls, { type DetailedPeerCertificate } from 'node:tls';
import t from 'tap';
import { parseXfcc } from '../../src/identity/xfcc.js';
import { makeTestPki, startStack, type TestPki } from '../helpers/harness.js';

const ALLOW = `
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
      - subject: { CN: ops-admin, OU: sre }`;

function route(name: string, prefix: string, forwardClientCert?: string): string {
  return `
  - name: ${name}
    match: { pathPrefix: ${prefix} }
    upstream: orders${forwardClientCert ? `\n    forwardClientCert: ${forwardClientCert}` : ''}${ALLOW}`;
}

/** The bytes of each item of an RFC 8941 List of Byte Sequences. */
function byteSequences(value: string | string[] | undefined): Buffer[] {
  if (typeof value !== 'string') throw new Error(`expected one header line, got ${JSON.stringify(value)}`);
  return value.split(', ').map((item) => {
    const m = /^:([A-Za-z0-9+/]*={0,2}):$/.exec(item);
    if (m === null) throw new Error(`not a byte sequence: ${item.slice(0, 40)}`);
    return Buffer.from(m[1]!, 'base64');
  });
}

/** How many header lines of a name the upstream received. */
function lines(raw: readonly string[], name: string): number {
  let n = 0;
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === name) n++;
  return n;
}

t.test('per-route overrides under the defaults (XFCC only)', async (t) => {
  const rawSeen: string[][] = [];
  const s = await startStack({
    routes: `routes:${route('plain', '/plain')}${route('full', '/full', '{ clientCert: true, clientCertChain: true }')}${route('instead', '/instead', '{ xfcc: false, clientCert: true }')}${route('none', '/none', '{ xfcc: false }')}`,
    upstreamHandler: (req, res, seen) => {
      rawSeen.push(req.rawHeaders);
      res.end(JSON.stringify({ url: seen.url }));
    },
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const leafDer = new X509Certificate(billing.certPem).raw;
  const intermediateDer = new X509Certificate(s.pki.intermediate.certPem).raw;
  const rootDer = new X509Certificate(s.pki.root.certPem).raw;

  const at = async (path: string): Promise<{ h: IncomingHttpHeaders; raw: string[] }> => {
    const before = s.upstream.seen.length;
    const res = await s.send(billing, { path });
    t.equal(res.status, 200, `${path} is forwarded`);
    return { h: s.upstream.seen[before]!.headers, raw: rawSeen[before]! };
  };

  const plain = await at('/plain');
  t.equal(parseXfcc(String(plain.h['x-forwarded-client-cert']))[0]!['URI']?.[0], 'spiffe://example.org/ns/default/sa/billing', 'defaults unchanged: XFCC');
  t.equal(plain.h['client-cert'], undefined, 'no Client-Cert by default');
  t.equal(plain.h['client-cert-chain'], undefined, 'no Client-Cert-Chain by default');

  const full = await at('/full');
  t.ok(full.h['x-forwarded-client-cert'], 'XFCC beside the RFC 9440 headers');
  t.same(byteSequences(full.h['client-cert']), [leafDer], "Client-Cert decodes to exactly the client's DER");
  t.same(byteSequences(full.h['client-cert-chain']), [intermediateDer], 'Client-Cert-Chain decodes to exactly the intermediate');
  t.notOk(byteSequences(full.h['client-cert-chain']).some((d) => d.equals(rootDer) || d.equals(leafDer)), 'neither the trust anchor nor the leaf is in the chain');
  t.equal(lines(full.raw, 'client-cert'), 1);
  t.equal(lines(full.raw, 'client-cert-chain'), 1);
  // undici writes Host and Connection first; then come the gateway's own headers, identity first.
  const names = full.raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
  t.same(names.slice(names.indexOf('x-forwarded-client-cert'), names.indexOf('x-forwarded-client-cert') + 4), ['x-forwarded-client-cert', 'client-cert', 'client-cert-chain', 'x-request-id'], "identity headers lead the gateway's own");

  const instead = await at('/instead');
  t.equal(instead.h['x-forwarded-client-cert'], undefined, 'xfcc: false sends no XFCC');
  t.same(byteSequences(instead.h['client-cert']), [leafDer]);
  t.equal(instead.h['client-cert-chain'], undefined);

  const none = await at('/none');
  for (const name of ['x-forwarded-client-cert', 'client-cert', 'client-cert-chain']) t.equal(none.h[name], undefined, `${name} not sent`);
  t.ok(none.h['x-request-id'], 'the other gateway headers are still there');

  // Another identity gets its own certificate, not the first one's memoized value.
  const ops = s.pki.clients['ops-admin']!;
  const before = s.upstream.seen.length;
  t.equal((await s.send(ops, { path: '/full' })).status, 200);
  t.same(byteSequences(s.upstream.seen[before]!.headers['client-cert']), [new X509Certificate(ops.certPem).raw]);
  // The same identity again, on a new connection: the same value.
  t.same(byteSequences((await at('/full')).h['client-cert']), [leafDer]);

  const logged = JSON.stringify(s.gw.logs);
  t.notOk(logged.includes(leafDer.toString('base64').slice(0, 64)), 'the DER is not written to the log');
});

t.test('global forwardClientCert, and a route that turns a header off', async (t) => {
  const s = await startStack({
    extra: 'forwardClientCert: { xfcc: true, clientCert: true, clientCertChain: true }',
    routes: `routes:${route('all', '/all')}${route('leaf-only', '/leaf', '{ clientCertChain: false }')}${route('xfcc-only', '/xfcc', '{ clientCert: false, clientCertChain: false }')}`,
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const leafDer = new X509Certificate(billing.certPem).raw;

  let res = await s.send(billing, { path: '/all' });
  t.equal(res.status, 200);
  let h = s.upstream.seen.at(-1)!.headers;
  t.ok(h['x-forwarded-client-cert']);
  t.same(byteSequences(h['client-cert']), [leafDer]);
  t.same(byteSequences(h['client-cert-chain']), [new X509Certificate(s.pki.intermediate.certPem).raw]);

  res = await s.send(billing, { path: '/leaf' });
  t.equal(res.status, 200);
  h = s.upstream.seen.at(-1)!.headers;
  t.same(byteSequences(h['client-cert']), [leafDer]);
  t.equal(h['client-cert-chain'], undefined);

  res = await s.send(billing, { path: '/xfcc' });
  t.equal(res.status, 200);
  h = s.upstream.seen.at(-1)!.headers;
  t.ok(h['x-forwarded-client-cert']);
  t.equal(h['client-cert'], undefined);
  t.equal(h['client-cert-chain'], undefined);
});

/** Whether this Node reports a client-sent intermediate on a server socket (Node 24.21 does not: nodejs/node#65579). */
function runtimeReportsClientChain(pki: TestPki): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const billing = pki.clients['billing']!;
    const server = tls.createServer({ key: pki.gatewayServer.keyPem, cert: pki.gatewayServer.chainPem, ca: [pki.root.certPem], requestCert: true, rejectUnauthorized: true }, (socket) => {
      const leaf = socket.getPeerCertificate(true) as DetailedPeerCertificate;
      resolve(leaf.issuerCertificate?.raw?.equals(pki.intermediate.der) ?? false);
      socket.end();
      server.close();
    });
    server.listen(0, '127.0.0.1', () => {
      const c = tls.connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, servername: 'localhost', ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem });
      c.on('error', reject);
      c.on('data', () => undefined);
    });
  });
}

t.test('an intermediate only the client sent is the chain the gateway verified', async (t) => {
  const pki = await makeTestPki();
  const reportsChain = await runtimeReportsClientChain(pki);
  t.comment(`${process.version} ${reportsChain ? 'reports' : 'drops (nodejs/node#65579)'} client-sent intermediates`);
  const s = await startStack({
    pki,
    crl: false,
    extra: 'forwardClientCert: { clientCert: true, clientCertChain: true }',
    // tls.clientCA holds the root alone: the client's chainPem carries the intermediate.
    beforeStart: (dir) => writeFile(path.join(dir, 'ca-bundle.pem'), pki.root.certPem),
  });
  t.teardown(() => s.close());
  const res = await s.send(pki.clients['billing']!, { path: '/orders' });
  if (!reportsChain) {
    t.equal(res.status, 401, 'Node 24.21: the chain cannot be seen whole, so the connection is refused');
    t.equal(s.upstream.seen.length, 0);
    return;
  }
  t.equal(res.status, 200);
  const h = s.upstream.seen[0]!.headers;
  t.same(byteSequences(h['client-cert']), [new X509Certificate(pki.clients['billing']!.certPem).raw]);
  t.same(byteSequences(h['client-cert-chain']), [new X509Certificate(pki.intermediate.certPem).raw], 'the client-sent intermediate, as verified');
});
