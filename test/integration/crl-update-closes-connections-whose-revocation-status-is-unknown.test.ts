// After a CRL update the gateway re-judges every live connection against the index in force, at
// the current time. A connection whose chain can no longer be judged (here: the root's CRL has
// passed its nextUpdate, and tls.revocation.stale is deny) is closed like a revoked one, logged
// with GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN, and a new request gets 401 with that code. The
// gateway's clock is injected, so "two hours later" needs no waiting.
import { writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { replaceFile, waitForGeneration } from '../helpers/crl-files.js';
import { gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles } from '../helpers/harness.js';

const HOUR = 3_600_000;

t.test('a live connection whose CRL went stale is closed at the next index change', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const rootCrl = await createCrl(pki.root, { nextUpdate: new Date(Date.now() + HOUR), crlNumber: 2 });
  await writeFile(path.join(dir, 'root.crl.pem'), rootCrl.pem);
  const upstream = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => upstream.close());
  let clock = Date.now();
  const gw = await startGateway({
    dir,
    yaml: gatewayYaml({ upstreamPort: upstream.port, crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem]\n  revocation: { pollInterval: 100ms }' }),
    now: () => clock,
  });
  t.teardown(() => gw.close());

  const billing = pki.clients['billing']!;
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem });
  t.teardown(() => agent.destroy());
  const first = await request(gw.port, null, '', { path: '/orders/1', agent });
  t.equal(first.status, 200);

  clock += 2 * HOUR;
  const from = gw.gateway.revocation.get('clients')!.index.generation;
  const fresh = await createCrl(pki.intermediate, { nextUpdate: new Date(Date.now() + 30 * 24 * HOUR), crlNumber: 2 });
  await replaceFile(path.join(dir, 'intermediate.crl.pem'), fresh.pem);
  await waitForGeneration(gw.gateway, 'clients', from);
  await closed(first.socket);
  t.ok(first.socket.destroyed, 'the connection was closed by the gateway');
  t.match(
    gw.logs.find((l) => l['event'] === 'client-revoked' && l['when'] === 'live-connection'),
    { code: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN', serial: pki.intermediate.serial, reason: /expired at .*stale: deny/ },
    'logged as unknown, naming the CA whose CRL is stale',
  );

  const again = await request(gw.port, null, '', { path: '/orders/2', agent });
  t.equal(again.status, 401);
  t.match(again.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOCATION_UNKNOWN' } });
  t.same(upstream.seen.map((r) => r.url), ['/orders/1']);
});

function closed(socket: TLSSocket): Promise<void> {
  return socket.destroyed ? Promise.resolve() : new Promise((r) => socket.once('close', () => r()));
}
