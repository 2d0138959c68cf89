// A reload (validate, then swap) puts every input in force without a restart: the server
// certificate (new handshakes get it, a live keep-alive connection carries on), the client CA
// bundle (a new CA's clients get in), route policy (a live connection's next request is judged by
// it), audit mode, the upstream client certificate (the next upstream connection presents it) and
// the log level. The generation rises by one per reload and /status-level state follows.
import { writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { createCrl, createRootCa, issueLeaf } from '../../src/pki/dev-pki.js';
import { gatewayYaml, request, startStack } from '../helpers/harness.js';

const ROUTES_DENYING_BILLING = `
routes:
  - name: orders
    match: { pathPrefix: /orders, methods: [GET, POST, PUT] }
    upstream: orders
    allow:
      - subject: { CN: ops-admin, OU: sre }
`;

const ROUTES_AUDITING_BILLING = ROUTES_DENYING_BILLING.replace('    upstream: orders\n', '    upstream: orders\n    audit: true\n');

t.test('a reload puts new certificates, CAs, policy and upstream credentials in force', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const { pki, dir } = s;
  const billing = pki.clients['billing']!;
  const file = path.join(dir, 'gateway.yaml');
  const yaml = (o: { routes?: string; extra?: string } = {}) => gatewayYaml({ upstreamPort: s.upstream.port, ...o });

  // A live keep-alive connection, kept across every reload below.
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem });
  t.teardown(() => agent.destroy());
  const first = await request(s.gw.port, null, pki.root.certPem, { path: '/orders/1', agent });
  t.equal(first.status, 200);
  const liveSocket = first.socket;

  await t.test('the server certificate rotates for new handshakes; the live connection carries on', async (t) => {
    const rotated = await issueLeaf(pki.intermediate, { name: 'gateway-rotated', subject: { CN: 'gateway-rotated' }, dns: ['localhost'], ips: ['127.0.0.1'], usage: 'server' });
    await writeFile(path.join(dir, 'gateway.crt'), rotated.chainPem);
    await writeFile(path.join(dir, 'gateway.key'), rotated.keyPem);
    const r = await s.gw.gateway.reload('test');
    t.same(r, { result: 'success', generation: 2 });
    const fresh = await s.send(billing, { path: '/orders/2' });
    t.equal(fresh.status, 200);
    t.equal((fresh.socket as TLSSocket).getPeerCertificate().subject.CN, 'gateway-rotated', 'a new handshake gets the new certificate');
    const again = await request(s.gw.port, null, pki.root.certPem, { path: '/orders/3', agent });
    t.equal(again.status, 200);
    t.equal(again.socket, liveSocket, 'the live connection was kept');
    t.equal(again.socket.getPeerCertificate().subject.CN, 'gateway', 'and keeps the certificate it was made with');
  });

  await t.test('a route policy change applies to the next request on a live connection', async (t) => {
    await writeFile(file, yaml({ routes: ROUTES_DENYING_BILLING }));
    t.match(await s.gw.gateway.reload('test'), { result: 'success', generation: 3 });
    const denied = await request(s.gw.port, null, pki.root.certPem, { path: '/orders/4', agent });
    t.equal(denied.status, 403);
    t.equal(denied.socket, liveSocket, 'same connection, judged by the new policy');
  });

  await t.test('audit mode forwards what the policy would deny, and says so', async (t) => {
    await writeFile(file, yaml({ routes: ROUTES_AUDITING_BILLING }));
    t.match(await s.gw.gateway.reload('test'), { result: 'success', generation: 4 });
    const seenBefore = s.upstream.seen.length;
    const audited = await request(s.gw.port, null, pki.root.certPem, { path: '/orders/5', agent });
    t.equal(audited.status, 200, 'forwarded');
    t.equal(s.upstream.seen.length, seenBefore + 1, 'the upstream got it');
    const rec = s.gw.logs.find((l) => l['msg'] === 'request' && l['path'] === '/orders/5');
    t.match(rec, { decision: 'would-deny', route: 'orders', status: 200, audit: { reason: 'no-allow-match' } }, 'logged as would-deny');
    const metrics = await s.gw.gateway.metrics.text();
    t.match(metrics, /mtls_gateway_requests_total\{route="orders",decision="would-deny",status="200"\} 1/, 'counted as would-deny');
    // Checks before policy are never audited.
    const noCert = await s.send(null, { path: '/orders/6' });
    t.equal(noCert.status, 401, 'a connection without a certificate is still refused');
    const traversal = await request(s.gw.port, null, pki.root.certPem, { path: '/orders/%2e%2e/admin', agent });
    t.equal(traversal.status, 400, 'a malformed path is still refused');
  });

  await t.test('a client CA added to the bundle admits its clients on new handshakes', async (t) => {
    const partnerRoot = await createRootCa({ name: 'partner-root', subject: { CN: 'Partner Root CA', O: 'Partner' } });
    const partner = await issueLeaf(partnerRoot, { name: 'partner', subject: { CN: 'partner' }, uris: ['spiffe://example.org/ns/default/sa/billing'], usage: 'client' });
    await writeFile(file, yaml());
    t.match(await s.gw.gateway.reload('test'), { result: 'success', generation: 5 });
    const before = await s.send(partner, { path: '/orders/7' });
    t.equal(before.status, 401, 'unknown CA: refused');
    // The partner has no CRL; the clients' revocation policy (missing: deny) would refuse it, so
    // this CA's chain is checked against an empty CRL the test publishes for it.
    const partnerCrl = await createCrl(partnerRoot);
    await writeFile(path.join(dir, 'partner.crl.pem'), partnerCrl.pem);
    await writeFile(path.join(dir, 'ca-bundle.pem'), pki.caBundlePem + partnerRoot.certPem);
    await writeFile(file, gatewayYaml({ upstreamPort: s.upstream.port, crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem, ./partner.crl.pem]' }));
    t.match(await s.gw.gateway.reload('test'), { result: 'success', generation: 6 });
    const after = await s.send(partner, { path: '/orders/8' });
    t.equal(after.status, 200, 'the new CA is trusted');
  });

  await t.test('the upstream client certificate rotates: the next upstream connection presents it', async (t) => {
    const rotated = await issueLeaf(pki.intermediate, { name: 'gateway-client-rotated', subject: { CN: 'gateway-client-rotated' }, usage: 'client' });
    await writeFile(path.join(dir, 'gateway-client.crt'), rotated.chainPem);
    await writeFile(path.join(dir, 'gateway-client.key'), rotated.keyPem);
    t.match(await s.gw.gateway.reload('test'), { result: 'success', generation: 7 });
    const r = await s.send(billing, { path: '/orders/9' });
    t.equal(r.status, 200);
    t.equal(s.upstream.seen.at(-1)!.peerCN, 'gateway-client-rotated', 'the upstream saw the new client certificate');
  });

  await t.test('the log level follows the config', async (t) => {
    t.equal(s.gw.gateway.runtime.current.config.log.level, 'debug');
    await writeFile(file, gatewayYaml({ upstreamPort: s.upstream.port, crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem, ./partner.crl.pem]' }).replace('log: { level: debug }', 'log: { level: warn }'));
    t.match(await s.gw.gateway.reload('test'), { result: 'success', generation: 8 });
    const before = s.gw.logs.length;
    t.equal((await s.send(billing, { path: '/orders/10' })).status, 200);
    t.notOk(s.gw.logs.slice(before).some((l) => l['msg'] === 'request'), 'info access records are no longer written');
  });

  const status = s.gw.gateway.status();
  t.equal(status.generation, 8);
  t.match(status.lastReload, { result: 'success', generation: 8, trigger: 'test' });
  t.ok(status.certificates.some((c) => c.role === 'client-ca' && /Partner Root CA/.test(c.subject)), '/status lists the added CA');
});
