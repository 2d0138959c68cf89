// Security decision pinned here: a WebSocket upgrade is judged by the same admission as any request
// (certificate, revocation, path, policy) before the gateway opens anything upstream, and a
// refused or malformed upgrade never reaches the upstream: not even a TCP/TLS connection. An open
// tunnel lives no longer than its client's trust: a CRL update that revokes the certificate, or a
// reload that removes its CA, closes the tunnel on both sides. docs/websocket.md.
import path from 'node:path';
import tls from 'node:tls';
import t, { type Test } from 'tap';
import { WebSocket } from 'ws';
import { createCrl, issueLeaf } from '../../src/pki/dev-pki.js';
import { replaceFile, waitForGeneration } from '../helpers/crl-files.js';
import { gatewayYaml } from '../helpers/harness.js';
import { addPartnerCa, removePartnerCa } from '../helpers/partner-ca.js';
import { firstJsonBody, rawExchange } from '../helpers/raw-exchange.js';
import { closed, nextMessage, startWebSocketStack, WEBSOCKET_ROUTES_YAML, type WebSocketStack } from '../helpers/websocket-stack.js';

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

function upgradeHead(opts: { method?: string; target?: string; lines?: string[] } = {}): string {
  const lines = opts.lines ?? ['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${KEY}`];
  return `${opts.method ?? 'GET'} ${opts.target ?? '/ws/x'} HTTP/1.1\r\nHost: localhost\r\n${lines.join('\r\n')}\r\n\r\n`;
}

function nothingUpstream(t: Test, s: WebSocketStack, what: string): void {
  t.equal(s.upstream.connections.length, 0, `${what}: the upstream saw no connection`);
  t.equal(s.upstream.upgrades.length + s.upstream.requests.length, 0, `${what}: and no request`);
}

t.test('no certificate, a denied identity, an unknown route: the normal refusals, nothing upstream', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  const refusal = (client: Parameters<WebSocketStack['connect']>[0], p: string) => s.connect(client, p).then(
    () => ({ status: 101, body: '' }),
    (e: { status?: number; body?: string }) => ({ status: e.status, body: e.body ?? '' }),
  );
  const none = await refusal(null, '/ws/x');
  t.equal(none.status, 401);
  t.match(JSON.parse(none.body), { error: { code: 'GW_ERR_CLIENT_CERT_MISSING', requestId: String } });
  const denied = await refusal(s.pki.clients['intruder']!, '/ws/x');
  t.equal(denied.status, 403);
  t.match(JSON.parse(denied.body), { error: { code: 'GW_ERR_POLICY_DENIED' } });
  const unknown = await refusal(s.pki.clients['billing']!, '/nowhere');
  t.equal(unknown.status, 404);
  nothingUpstream(t, s, 'refused upgrades');
  t.match(s.gw.logs.find((l) => l.msg === 'request refused' && l['code'] === 'GW_ERR_POLICY_DENIED'), { websocket: true, status: 403, route: 'ws', decision: 'deny' });
});

t.test('path tricks on an upgrade get 400 and never reach the upstream', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  const creds = { ca: s.pki.root.certPem, cert: s.pki.clients['billing']!.chainPem, key: s.pki.clients['billing']!.keyPem };
  for (const target of ['/ws/..%2fadmin', '/ws/%2e%2e/admin', '/ws/..;/admin', '/ws\\..\\admin', '/ws/%252e%252e/admin']) {
    const r = await rawExchange(s.gw.port, creds, upgradeHead({ target }), { endAfterWrite: false });
    t.same(r.statuses, [400], `${target}: 400`);
    t.match(firstJsonBody(r.text), { error: { code: 'GW_ERR_PATH_INVALID' } });
    t.ok(r.closedByServer, `${target}: the connection is closed`);
  }
  nothingUpstream(t, s, 'path tricks');
});

t.test('hostile upgrade requests never crash the gateway and never reach the upstream', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  const billing = { ca: s.pki.root.certPem, cert: s.pki.clients['billing']!.chainPem, key: s.pki.clients['billing']!.keyPem };
  const intruder = { ca: s.pki.root.certPem, cert: s.pki.clients['intruder']!.chainPem, key: s.pki.clients['intruder']!.keyPem };
  const cases: { name: string; creds: typeof billing; payload: string; status: number; code: string }[] = [
    { name: 'Upgrade: h2c', creds: billing, payload: upgradeHead({ lines: ['Connection: Upgrade, HTTP2-Settings', 'Upgrade: h2c', 'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA'] }), status: 501, code: 'GW_ERR_UPGRADE_NOT_SUPPORTED' },
    { name: 'Upgrade: TLS/1.0', creds: billing, payload: upgradeHead({ lines: ['Connection: Upgrade', 'Upgrade: TLS/1.0'] }), status: 501, code: 'GW_ERR_UPGRADE_NOT_SUPPORTED' },
    { name: 'two Upgrade headers', creds: billing, payload: upgradeHead({ lines: ['Connection: Upgrade', 'Upgrade: websocket', 'Upgrade: h2c', `Sec-WebSocket-Key: ${KEY}`] }), status: 400, code: 'GW_ERR_UPGRADE_INVALID' },
    { name: 'two protocols in one Upgrade', creds: billing, payload: upgradeHead({ lines: ['Connection: Upgrade', 'Upgrade: websocket, h2c', `Sec-WebSocket-Key: ${KEY}`] }), status: 400, code: 'GW_ERR_UPGRADE_INVALID' },
    { name: 'missing Sec-WebSocket-Key', creds: billing, payload: upgradeHead({ lines: ['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13'] }), status: 400, code: 'GW_ERR_UPGRADE_INVALID' },
    { name: 'two Sec-WebSocket-Keys', creds: billing, payload: upgradeHead({ lines: ['Connection: Upgrade', 'Upgrade: websocket', `Sec-WebSocket-Key: ${KEY}`, `Sec-WebSocket-Key: ${KEY}`] }), status: 400, code: 'GW_ERR_UPGRADE_INVALID' },
    { name: 'a malformed Sec-WebSocket-Key', creds: billing, payload: upgradeHead({ lines: ['Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Key: not-base64!'] }), status: 400, code: 'GW_ERR_UPGRADE_INVALID' },
    { name: 'a huge Sec-WebSocket-Key', creds: billing, payload: upgradeHead({ lines: ['Connection: Upgrade', 'Upgrade: websocket', `Sec-WebSocket-Key: ${'A'.repeat(8000)}==`] }), status: 400, code: 'GW_ERR_UPGRADE_INVALID' },
    { name: 'an empty Upgrade beside a valid one', creds: billing, payload: upgradeHead({ lines: ['Connection: Upgrade', 'Upgrade: websocket', 'Upgrade: ', `Sec-WebSocket-Key: ${KEY}`] }), status: 400, code: 'GW_ERR_UPGRADE_INVALID' },
    {
      name: 'a body with the upgrade',
      creds: billing,
      payload: upgradeHead({ method: 'GET', lines: ['Connection: Upgrade', 'Upgrade: websocket', `Sec-WebSocket-Key: ${KEY}`, 'Content-Length: 5'] }) + 'hello',
      status: 400,
      code: 'GW_ERR_UPGRADE_INVALID',
    },
    {
      name: 'a chunked body with the upgrade',
      creds: billing,
      payload: upgradeHead({ lines: ['Connection: Upgrade', 'Upgrade: websocket', `Sec-WebSocket-Key: ${KEY}`, 'Transfer-Encoding: chunked'] }) + '5\r\nhello\r\n0\r\n\r\n',
      status: 400,
      code: 'GW_ERR_UPGRADE_INVALID',
    },
    { name: 'Upgrade on POST', creds: billing, payload: upgradeHead({ method: 'POST' }), status: 400, code: 'GW_ERR_UPGRADE_INVALID' },
    { name: 'HTTP/1.0 upgrade', creds: billing, payload: upgradeHead().replace('HTTP/1.1', 'HTTP/1.0'), status: 400, code: 'GW_ERR_UPGRADE_INVALID' },
    { name: 'pipelined request after a denied upgrade', creds: intruder, payload: upgradeHead() + 'GET /ws/y HTTP/1.1\r\nHost: localhost\r\n\r\n', status: 403, code: 'GW_ERR_POLICY_DENIED' },
    { name: 'pipelined frame bytes after an h2c upgrade', creds: billing, payload: upgradeHead({ lines: ['Connection: Upgrade', 'Upgrade: h2c'] }) + 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', status: 501, code: 'GW_ERR_UPGRADE_NOT_SUPPORTED' },
  ];
  for (const c of cases) {
    const r = await rawExchange(s.gw.port, c.creds, c.payload, { endAfterWrite: false });
    t.same(r.statuses, [c.status], `${c.name}: ${c.status}, one answer`);
    t.match(firstJsonBody(r.text), { error: { code: c.code } }, `${c.name}: ${c.code}`);
    t.ok(r.closedByServer, `${c.name}: the connection is closed`);
  }
  nothingUpstream(t, s, 'hostile upgrades');
  const ws = await s.connect(s.pki.clients['billing']!, '/ws/after');
  ws.send('still here');
  t.equal((await nextMessage(ws)).toString(), 'still here', 'the gateway still tunnels afterwards');
  ws.close();
  await closed(ws);
});

t.test('a refused upgrade from a client that never closes its side does not keep the connection', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  // allowHalfOpen (honoured by tls.connect, absent from its types): the client reads the answer
  // and the gateway's FIN, and keeps its own side open.
  const options: tls.ConnectionOptions = { host: '127.0.0.1', port: s.gw.port, servername: 'localhost', ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem };
  const sock = tls.connect(Object.assign(options, { allowHalfOpen: true }));
  t.teardown(() => sock.destroy());
  sock.on('error', () => undefined);
  let text = '';
  sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
  const ended = new Promise((r) => sock.once('end', r));
  await new Promise((r) => sock.once('secureConnect', r));
  sock.write(upgradeHead({ lines: ['Connection: Upgrade', 'Upgrade: h2c'] }));
  await ended;
  t.match(text, /^HTTP\/1\.1 501 /);
  await until(() => s.gw.gateway.status().connectionsOpen === 0);
  t.pass('the gateway released the connection although the client kept its side open');
});

t.test('bytes pipelined after an admitted upgrade reach the upstream only after its 101', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  const creds = { ca: s.pki.root.certPem, cert: s.pki.clients['billing']!.chainPem, key: s.pki.clients['billing']!.keyPem };
  // A masked text frame "hi" (RFC 6455 5.2), sent in the same write as the handshake.
  const mask = Buffer.from([1, 2, 3, 4]);
  const frame = Buffer.concat([Buffer.from([0x81, 0x82]), mask, Buffer.from([0x68 ^ 1, 0x69 ^ 2])]);
  const r = await rawExchange(s.gw.port, creds, Buffer.concat([Buffer.from(upgradeHead(), 'latin1'), frame]), { endAfterWrite: false, timeoutMs: 1000 });
  t.equal(r.statuses[0], 101);
  t.match(r.text, /\r\n\r\n\x81\x02hi/, 'the upstream read the early frame as WebSocket data and echoed it');
  t.equal(s.upstream.upgrades.length, 1);
});

t.test('a CRL update that revokes the client closes its open tunnel on both sides', async (t) => {
  const s = await startWebSocketStack({ crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem]\n  revocation: { pollInterval: 100ms }' });
  t.teardown(() => s.close());
  const billing = await s.connect(s.pki.clients['billing']!, '/ws/a');
  const ops = await s.connect(s.pki.clients['ops-admin']!, '/admin/b');
  billing.send('one');
  t.equal((await nextMessage(billing)).toString(), 'one');
  t.equal(s.upstream.sockets.length, 2);
  const [billingUpstream, opsUpstream] = s.upstream.sockets;

  const from = s.gw.gateway.revocation.get('clients')!.index.generation;
  const crl = await createCrl(s.pki.intermediate, { revoked: [{ serial: s.pki.clients['billing']!.serial, reason: 'keyCompromise' }], crlNumber: 2 });
  await replaceFile(path.join(s.gw.dir, 'intermediate.crl.pem'), crl.pem);
  await waitForGeneration(s.gw.gateway, 'clients', from);
  t.equal(await closed(billing), 1006, 'the revoked client\'s tunnel was cut');
  if (billingUpstream!.readyState !== WebSocket.CLOSED) await closed(billingUpstream!);
  t.equal(billingUpstream!.readyState, WebSocket.CLOSED, 'the upstream side of the tunnel closed too');
  t.equal(opsUpstream!.readyState, WebSocket.OPEN, 'another client\'s tunnel is untouched');
  ops.send('two');
  t.equal((await nextMessage(ops)).toString(), 'two');
  t.match(s.gw.logs.find((l) => l['event'] === 'client-revoked' && l['when'] === 'live-connection'), { serial: s.pki.clients['billing']!.serial });
  await until(() => s.gw.logs.some((l) => l.msg === 'request' && l['websocket'] === true && l['path'] === '/ws/a'));
  t.match(s.gw.logs.find((l) => l.msg === 'request' && l['path'] === '/ws/a'), { status: 101, closedBy: 'gateway', reason: 'connection-closed' });
  const again = await s.connect(s.pki.clients['billing']!, '/ws/a').catch((e: { status?: number }) => e);
  t.equal((again as { status?: number }).status, 401, 'and it cannot open another one');
  ops.close();
  await closed(ops);
});

async function until(cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}

t.test('a reload that removes the client CA closes its open tunnel on both sides', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  const dir = s.gw.dir;
  const yaml = (crlYaml: string) => gatewayYaml({ upstreamPort: s.upstream.port, routes: WEBSOCKET_ROUTES_YAML, crlYaml });
  const partner = await addPartnerCa(dir, s.pki, yaml);
  t.match(await s.gw.gateway.reload('test'), { result: 'success' });

  const partnerWs = await s.connect(partner, '/ws/p');
  const billingWs = await s.connect(s.pki.clients['billing']!, '/ws/b');
  partnerWs.send('hello');
  t.equal((await nextMessage(partnerWs)).toString(), 'hello', 'the partner tunnel works');
  const [partnerUpstream] = s.upstream.sockets;

  await removePartnerCa(dir, s.pki, yaml);
  t.match(await s.gw.gateway.reload('test'), { result: 'success' });
  t.equal(await closed(partnerWs), 1006, 'the tunnel of the removed CA\'s client was cut');
  if (partnerUpstream!.readyState !== WebSocket.CLOSED) await closed(partnerUpstream!);
  t.equal(partnerUpstream!.readyState, WebSocket.CLOSED, 'the upstream side closed too');
  billingWs.send('still');
  t.equal((await nextMessage(billingWs)).toString(), 'still', 'a client of a CA that stayed keeps its tunnel');
  billingWs.close();
  await closed(billingWs);
});

t.test('an open tunnel is cut when its client certificate expires', async (t) => {
  const s = await startWebSocketStack();
  t.teardown(() => s.close());
  // Valid for a few seconds more: admitted now, expired while the tunnel is open.
  const shortLived = await issueLeaf(s.pki.intermediate, {
    name: 'short-lived',
    subject: { CN: 'billing', OU: 'payments', O: 'Example' },
    uris: ['spiffe://example.org/ns/default/sa/billing'],
    usage: 'client',
    notBefore: new Date(Date.now() - 60_000),
    notAfter: new Date(Date.now() + 3_000),
  });
  const ws = await s.connect(shortLived, '/ws/short');
  const stay = await s.connect(s.pki.clients['billing']!, '/ws/stay');
  ws.send('before');
  t.equal((await nextMessage(ws)).toString(), 'before', 'the tunnel works while the certificate is valid');
  const [shortUpstream] = s.upstream.sockets;
  t.equal(await Promise.race([closed(ws), new Promise((r) => setTimeout(() => r('still open'), 15_000))]), 1006, 'the tunnel was cut at the expiry');
  if (shortUpstream!.readyState !== WebSocket.CLOSED) await closed(shortUpstream!);
  t.equal(shortUpstream!.readyState, WebSocket.CLOSED, 'the upstream side closed too');
  await until(() => s.gw.logs.some((l) => l.msg === 'request' && l['path'] === '/ws/short'));
  t.match(s.gw.logs.find((l) => l.msg === 'request' && l['path'] === '/ws/short'), { status: 101, closedBy: 'gateway', reason: 'certificate-expired' }, 'logged with the reason');
  stay.send('after');
  t.equal((await nextMessage(stay)).toString(), 'after', 'another client\'s tunnel carries on');
  stay.close();
  await closed(stay);
});
