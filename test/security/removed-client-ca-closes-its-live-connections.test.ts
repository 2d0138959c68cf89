// Defends the removal of a client CA: once a reload drops a CA from tls.clientCA, its clients'
// live keep-alive connections are closed at once (not only refused on their next request), new
// handshakes are refused with 401, and clients of the CAs that stayed carry on over the same
// connection. Without the re-judgement after the swap, a connection made before the removal
// would keep a trust the operator withdrew for as long as the client keeps it alive.
import { writeFile } from 'node:fs/promises';
import { constants } from 'node:http2';
import https from 'node:https';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { goawayOf, h2connect, h2request } from '../helpers/h2-client.js';
import { gatewayYaml, request, startStack } from '../helpers/harness.js';
import { addPartnerCa, removePartnerCa } from '../helpers/partner-ca.js';

t.test('a removed client CA closes its live connections and refuses new ones', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const { pki, dir } = s;
  const yaml = (crlYaml: string) => gatewayYaml({ upstreamPort: s.upstream.port, crlYaml });
  const partner = await addPartnerCa(dir, pki, yaml);
  t.match(await s.gw.gateway.reload('test'), { result: 'success', generation: 2 });

  // Two clients from the same trust store (the client trusts both roots for the server).
  const ca = pki.root.certPem;
  const partnerAgent = new https.Agent({ keepAlive: true, maxSockets: 1, ca, cert: partner.chainPem, key: partner.keyPem });
  const billing = pki.clients['billing']!;
  const billingAgent = new https.Agent({ keepAlive: true, maxSockets: 1, ca, cert: billing.chainPem, key: billing.keyPem });
  t.teardown(() => {
    partnerAgent.destroy();
    billingAgent.destroy();
  });
  const p1 = await request(s.gw.port, null, ca, { path: '/orders/1', agent: partnerAgent });
  t.equal(p1.status, 200, 'the partner CA is trusted');
  const b1 = await request(s.gw.port, null, ca, { path: '/orders/1', agent: billingAgent });
  t.equal(b1.status, 200);
  const partnerClosed = new Promise<void>((r) => p1.socket.once('close', () => r()));
  let billingClosed = false;
  b1.socket.once('close', () => (billingClosed = true));

  await removePartnerCa(dir, pki, yaml);
  const logStart = s.gw.logs.length;
  t.match(await s.gw.gateway.reload('test'), { result: 'success', generation: 3 });
  await Promise.race([partnerClosed, sleep(5_000).then(() => Promise.reject(new Error('the partner connection was not closed')))]);
  t.pass('the live partner connection was closed by the gateway, without another request');
  t.match(
    s.gw.logs.slice(logStart).find((l) => l['event'] === 'client-rejected' && l['when'] === 'reload'),
    { code: 'GW_ERR_CLIENT_CERT_UNTRUSTED' },
    'and the closure is logged with the reason',
  );
  t.match(await s.gw.gateway.metrics.text(), /mtls_gateway_client_cert_rejections_total\{code="GW_ERR_CLIENT_CERT_UNTRUSTED"\} [1-9]/, 'and counted');

  const p2 = await s.send(partner, { path: '/orders/2' });
  t.equal(p2.status, 401, 'a new partner handshake is refused');
  t.match(p2.json, { error: { code: 'GW_ERR_CLIENT_CERT_UNTRUSTED' } });

  const b2 = await request(s.gw.port, null, ca, { path: '/orders/2', agent: billingAgent });
  t.equal(b2.status, 200, 'a client of a CA that stayed carries on');
  t.equal(b2.socket, b1.socket, 'over the same connection');
  t.notOk(billingClosed, 'which was never closed');
});

t.test('dropping the intermediate from the bundle closes connections whose chain needed it', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const { pki, dir } = s;
  const billing = pki.clients['billing']!;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.root.certPem, cert: billing.certPem, key: billing.keyPem });
  t.teardown(() => agent.destroy());
  // The client sends its leaf alone: the chain is completed from the bundle's intermediate.
  const r1 = await request(s.gw.port, null, pki.root.certPem, { path: '/orders/1', agent });
  t.equal(r1.status, 200);
  const closed = new Promise<void>((r) => r1.socket.once('close', () => r()));
  await writeFile(path.join(dir, 'ca-bundle.pem'), pki.root.certPem);
  await writeFile(path.join(dir, 'gateway.yaml'), gatewayYaml({ upstreamPort: s.upstream.port, crlYaml: '  crl: [./root.crl.pem]' }));
  t.match(await s.gw.gateway.reload('test'), { result: 'success', generation: 2 });
  await Promise.race([closed, sleep(5_000).then(() => Promise.reject(new Error('the connection was not closed')))]);
  t.pass('closed after the reload');
});

t.test('over HTTP/2 the removal closes the connection with GOAWAY INADEQUATE_SECURITY', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const { pki, dir } = s;
  const yaml = (crlYaml: string) => gatewayYaml({ upstreamPort: s.upstream.port, crlYaml });
  const partner = await addPartnerCa(dir, pki, yaml);
  t.match(await s.gw.gateway.reload('test'), { result: 'success' });

  const ca = pki.root.certPem;
  const p = await h2connect(s.gw.port, partner, ca);
  const b = await h2connect(s.gw.port, pki.clients['billing']!, ca);
  t.teardown(() => {
    p.destroy();
    b.destroy();
  });
  t.equal((await h2request(p, { path: '/orders/1' })).status, 200, 'the partner CA is trusted over h2');
  t.equal((await h2request(b, { path: '/orders/1' })).status, 200);
  const goaway = goawayOf(p);

  await removePartnerCa(dir, pki, yaml);
  t.match(await s.gw.gateway.reload('test'), { result: 'success' });
  t.equal(await goaway, constants.NGHTTP2_INADEQUATE_SECURITY, 'the partner connection gets GOAWAY INADEQUATE_SECURITY');
  t.equal((await h2request(b, { path: '/orders/2' })).status, 200, 'a client of a CA that stayed carries on over the same connection');
  t.notOk(b.destroyed || b.closed, 'which was never closed');
});
