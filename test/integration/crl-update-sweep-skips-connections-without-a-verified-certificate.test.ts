// After a CRL update the gateway re-judges every live connection and closes those whose chain is
// now revoked. Connections that never had a verified certificate (none presented, or one that
// failed verification) have nothing to re-judge: the sweep leaves them alone, they keep getting
// their 401 per request, and the sweep still closes the revoked client's connection. Security:
// the sweep runs in the CRL reload path; an unauthenticated connection must not be able to make
// it fail and leave a revoked client connected.
import path from 'node:path';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import https from 'node:https';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { replaceFile, waitForGeneration } from '../helpers/crl-files.js';
import { makeTestPki, request, startStack } from '../helpers/harness.js';
import { firstJsonBody, statusesIn } from '../helpers/raw-exchange.js';

/** A connection held open without a request yet; send() writes one request and collects the answer. */
async function openConnection(port: number, opts: tls.ConnectionOptions) {
  const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...opts });
  let text = '';
  sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
  sock.on('error', () => undefined);
  const closed = new Promise<void>((r) => sock.once('close', () => r()));
  await new Promise<void>((r) => sock.once('secureConnect', () => r()));
  return {
    sock,
    async send(payload: string): Promise<string> {
      sock.write(payload);
      await Promise.race([closed, sleep(5_000)]);
      return text;
    },
  };
}

t.test('a CRL update closes the revoked client and leaves unauthenticated connections to their 401', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({ pki, crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem]\n  revocation: { pollInterval: 100ms }' });
  t.teardown(() => s.close());
  const billing = pki.clients['billing']!;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem });
  t.teardown(() => agent.destroy());
  const first = await request(s.gw.port, null, '', { path: '/orders/1', agent });
  t.equal(first.status, 200);

  const anonymous = await openConnection(s.gw.port, { ca: pki.root.certPem });
  const rogue = await openConnection(s.gw.port, { ca: pki.root.certPem, cert: pki.rogueClient.chainPem, key: pki.rogueClient.keyPem });
  t.teardown(() => {
    anonymous.sock.destroy();
    rogue.sock.destroy();
  });

  const from = s.gw.gateway.revocation.get('clients')!.index.generation;
  const crl = await createCrl(pki.intermediate, { revoked: [{ serial: billing.serial, reason: 'keyCompromise' }], crlNumber: 2 });
  await replaceFile(path.join(s.dir, 'intermediate.crl.pem'), crl.pem);
  await waitForGeneration(s.gw.gateway, 'clients', from);
  if (!first.socket.destroyed) await new Promise<void>((r) => first.socket.once('close', () => r()));
  t.ok(first.socket.destroyed, 'the revoked client\'s connection was closed by the sweep');
  t.match(s.gw.logs.find((l) => l['event'] === 'client-revoked' && l['when'] === 'live-connection'), { serial: billing.serial, code: 'GW_ERR_CLIENT_CERT_REVOKED' });
  t.notOk(anonymous.sock.destroyed, 'the connection without a certificate is still open');
  t.notOk(rogue.sock.destroyed, 'the connection with an untrusted certificate is still open');
  t.notOk(s.gw.logs.some((l) => l.level >= 50), 'nothing failed in the reload path');

  const anonText = await anonymous.send('GET /orders/2 HTTP/1.1\r\nHost: localhost\r\n\r\n');
  t.same(statusesIn(anonText), [401]);
  t.match(firstJsonBody(anonText), { error: { code: 'GW_ERR_CLIENT_CERT_MISSING' } });
  const rogueText = await rogue.send('GET /orders/3 HTTP/1.1\r\nHost: localhost\r\n\r\n');
  t.same(statusesIn(rogueText), [401]);
  t.match(firstJsonBody(rogueText), { error: { code: 'GW_ERR_CLIENT_CERT_UNTRUSTED' } });
  t.same(s.upstream.seen.map((r) => r.url), ['/orders/1']);
});
