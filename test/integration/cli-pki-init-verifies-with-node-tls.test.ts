// `mtls-gateway pki init` as a user runs it: the files it writes are named for what they are, keys
// are 0600, Node's own TLS stack verifies the chains, key usages and CRLs, and the gateway started
// with the shipped config/gateway.yaml accepts the result end to end.
import { X509Certificate } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { pino } from 'pino';
import t from 'tap';
import { parseCrlFile } from '../../src/revocation/parse-crl.js';
import { verifyCrlSignature } from '../../src/revocation/verify-crl.js';
import { startDemoStack } from '../../src/demo/demo-stack.js';
import { cli, shippedLayout } from '../helpers/demo-cli.js';

const EKU_SERVER = '1.3.6.1.5.5.7.3.1';
const EKU_CLIENT = '1.3.6.1.5.5.7.3.2';

/** What Node's TLS server concludes about a client certificate, with the gateway's trust settings. */
async function handshake(dir: string, client: string): Promise<{ authorized: boolean; error: string | null }> {
  const read = (f: string) => readFile(path.join(dir, f), 'utf8');
  const server = tls.createServer({
    cert: await read('gateway.crt'),
    key: await read('gateway.key'),
    ca: await read('ca-bundle.pem'),
    crl: [await read('root.crl.pem'), await read('intermediate.crl.pem')],
    requestCert: true,
    // A probe, not a shortcut: the server must finish the handshake so the test can read OpenSSL's
    // verdict (authorized / authorizationError) on each client certificate; with `true` Node drops
    // the socket and the reason is lost. The client side below verifies the server as usual.
    rejectUnauthorized: false,
  });
  const verdict = new Promise<{ authorized: boolean; error: string | null }>((resolve) => {
    server.once('secureConnection', (s: tls.TLSSocket) => {
      resolve({ authorized: s.authorized, error: s.authorizationError ? String(s.authorizationError) : null });
      s.end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const socket = tls.connect({
    host: '127.0.0.1',
    port: (server.address() as AddressInfo).port,
    servername: 'localhost',
    ca: await read('root-ca.crt'),
    cert: await read(`client-${client}.crt`),
    key: await read(`client-${client}.key`),
  });
  socket.on('error', () => undefined);
  const v = await verdict;
  socket.destroy();
  await new Promise<void>((r) => server.close(() => r()));
  return v;
}

function get(port: number, dir: string, client: string | null, urlPath: string): Promise<{ status: number; body: string }> {
  return Promise.all([
    readFile(path.join(dir, 'ca-bundle.pem'), 'utf8'),
    client ? readFile(path.join(dir, `client-${client}.crt`), 'utf8') : null,
    client ? readFile(path.join(dir, `client-${client}.key`), 'utf8') : null,
  ]).then(
    ([ca, cert, key]) =>
      new Promise((resolve, reject) => {
        const req = https.request({ host: '127.0.0.1', port, servername: 'localhost', path: urlPath, ca, agent: false, ...(cert && key ? { cert, key } : {}) }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      }),
  );
}

t.test('pki init writes a PKI that Node verifies and the gateway accepts', async (t) => {
  const root = t.testdir();
  const { config, certs } = await shippedLayout(root, { pki: false });

  const r = await cli(['pki', 'init', '--out', certs, '--days', '10']);
  t.equal(r.code, 0, r.stderr);
  t.match(r.stdout, /leaves valid 10 days/);

  const files = (await readdir(certs)).sort();
  t.same(
    files,
    [
      'ca-bundle.pem',
      ...['billing', 'intruder', 'ops-admin', 'revoked'].flatMap((c) => [`client-${c}.crt`, `client-${c}.key`]),
      'gateway-client.crt',
      'gateway-client.key',
      'gateway.crt',
      'gateway.key',
      'intermediate-ca.crt',
      'intermediate-ca.key',
      'intermediate.crl.pem',
      'root-ca.crt',
      'root-ca.key',
      'root.crl.pem',
      ...['inventory', 'orders'].flatMap((u) => [`upstream-${u}.crt`, `upstream-${u}.key`]),
    ],
    'every file says what it is',
  );
  for (const f of files) {
    const mode = (await stat(path.join(certs, f))).mode & 0o777;
    t.equal(mode, f.endsWith('.key') ? 0o600 : 0o644, `${f} mode ${mode.toString(8)}`);
  }

  // Chains, key usages and validity, read with Node's X509Certificate (not the generator's library).
  const cert = async (f: string) => new X509Certificate(await readFile(path.join(certs, f)));
  const rootCa = await cert('root-ca.crt');
  const intermediate = await cert('intermediate-ca.crt');
  t.ok(rootCa.ca && intermediate.ca);
  t.ok(intermediate.verify(rootCa.publicKey), 'intermediate signed by the root');
  for (const [f, eku] of [
    ['gateway.crt', [EKU_SERVER]],
    ['gateway-client.crt', [EKU_CLIENT]],
    ['upstream-orders.crt', [EKU_SERVER]],
    ['upstream-inventory.crt', [EKU_SERVER]],
    ['client-billing.crt', [EKU_CLIENT]],
    ['client-ops-admin.crt', [EKU_CLIENT]],
    ['client-intruder.crt', [EKU_CLIENT]],
    ['client-revoked.crt', [EKU_CLIENT]],
  ] as const) {
    const leaf = await cert(f);
    t.notOk(leaf.ca, `${f} is a leaf`);
    t.ok(leaf.verify(intermediate.publicKey), `${f} signed by the intermediate`);
    t.same(leaf.keyUsage, eku, `${f} extended key usage`);
    const days = (new Date(leaf.validTo).getTime() - Date.now()) / 86_400_000;
    t.ok(days > 9.9 && days <= 10, `${f} valid for --days 10 (${days.toFixed(2)})`);
    t.ok(new Date(leaf.validTo) <= new Date(intermediate.validTo), `${f} does not outlive its CA`);
  }
  t.match((await cert('client-billing.crt')).subjectAltName, /URI:spiffe:\/\/example\.org\/ns\/default\/sa\/billing/);
  t.equal((await cert('client-ops-admin.crt')).subjectAltName, undefined, 'ops-admin has only a subject');
  t.match((await cert('upstream-orders.crt')).subjectAltName, /DNS:orders\.internal/);

  // CRLs: one per CA, signed by it; the revoked client is on the intermediate's.
  const revokedSerial = (await cert('client-revoked.crt')).serialNumber;
  for (const [f, issuer, entries] of [['root.crl.pem', rootCa, 0], ['intermediate.crl.pem', intermediate, 1]] as const) {
    const [crl] = parseCrlFile(await readFile(path.join(certs, f)));
    t.ok(crl, f);
    t.ok(verifyCrlSignature(crl!, issuer).ok, `${f} signed by its CA`);
    t.equal(crl!.revokedCount, entries, `${f} entries`);
    t.ok(crl!.nextUpdate! > new Date(), `${f} is current`);
  }
  t.ok(parseCrlFile(await readFile(path.join(certs, 'intermediate.crl.pem')))[0]!.revoked.has(revokedSerial));

  // Node's TLS with the gateway's trust settings (CA bundle and both CRLs).
  const [billing, opsAdmin, intruder, revoked] = await Promise.all(['billing', 'ops-admin', 'intruder', 'revoked'].map((c) => handshake(certs, c)));
  t.same(billing, { authorized: true, error: null });
  t.same(opsAdmin, { authorized: true, error: null });
  t.same(intruder, { authorized: true, error: null }, 'trusted, even if no route admits it');
  t.same(revoked, { authorized: false, error: 'CERT_REVOKED' });

  // End to end with the shipped config: demo services on free ports, the gateway on a free port.
  const stack = await startDemoStack({ configFile: config, logger: pino({ level: 'silent' }), gatewayPort: 0, upstreamPorts: { orders: 0, inventory: 0 } });
  t.teardown(() => stack.close());
  const port = stack.address.port;
  const ok = await get(port, certs, 'billing', '/orders/7');
  t.equal(ok.status, 200);
  t.match(JSON.parse(ok.body), { service: 'orders', caller: 'spiffe://example.org/ns/default/sa/billing', connectedAs: 'gateway' });
  t.equal((await get(port, certs, 'ops-admin', '/inventory/1')).status, 200);
  t.match(JSON.parse((await get(port, certs, 'revoked', '/orders/7')).body), { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
  t.match(JSON.parse((await get(port, certs, null, '/orders/7')).body), { error: { code: 'GW_ERR_CLIENT_CERT_MISSING' } });

  // A second init refuses to overwrite; --if-absent leaves it alone; --force replaces it.
  const [again, keep, badDays] = await Promise.all([
    cli(['pki', 'init', '--out', certs]),
    cli(['pki', 'init', '--out', certs, '--if-absent']),
    cli(['pki', 'init', '--out', certs, '--days', '0']),
  ]);
  t.equal(again.code, 1);
  t.match(again.stderr, /already holds a PKI.*--force/);
  t.equal(keep.code, 0);
  t.equal(badDays.code, 2, '--days 0 is a usage error');
  t.equal((await cert('root-ca.crt')).fingerprint256, rootCa.fingerprint256, 'the refused init and --if-absent keep the PKI');
  t.equal((await cli(['pki', 'init', '--out', certs, '--force'])).code, 0);
  t.not((await cert('root-ca.crt')).fingerprint256, rootCa.fingerprint256, '--force replaces it');
});
