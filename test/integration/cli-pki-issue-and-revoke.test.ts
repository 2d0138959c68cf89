// `pki issue` adds a certificate the gateway accepts; `pki revoke` re-signs the issuer's CRL with
// every earlier entry plus the new one and a higher CRL number, and a gateway started on the new
// CRL refuses the certificate. `pki crl` re-signs with the same entries.
import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { startDemoStack } from '../../src/demo/demo-stack.js';
import { parseCrlFile } from '../../src/revocation/parse-crl.js';
import { verifyCrlSignature } from '../../src/revocation/verify-crl.js';
import { runPkiCrl, runPkiIssue, runPkiRevoke, type PkiIssueOptions } from '../../src/cli/pki-commands.js';
import { captured, cli, shippedLayout } from '../helpers/demo-cli.js';

async function get(port: number, certs: string, client: string, urlPath: string): Promise<{ status: number; code: string | null }> {
  const [ca, cert, key] = await Promise.all(['ca-bundle.pem', `${client}.crt`, `${client}.key`].map((f) => readFile(path.join(certs, f), 'utf8')));
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, servername: 'localhost', path: urlPath, ca, cert, key, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, code: res.statusCode === 200 ? null : (JSON.parse(body) as { error: { code: string } }).error.code }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function crlOf(certs: string, name: string) {
  const [crl] = parseCrlFile(await readFile(path.join(certs, name)));
  return crl!;
}

t.test('issue, use, revoke, refused', async (t) => {
  const { config, certs, pki } = await shippedLayout(t.testdir());
  const stackOpts = { configFile: config, logger: pino({ level: 'silent' }), gatewayPort: 0, upstreamPorts: { orders: 0, inventory: 0 } };

  const issued = await cli(['pki', 'issue', '--dir', certs, '--name', 'reporting', '--cn', 'reporting', '--ou', 'payments', '--spiffe', 'spiffe://example.org/ns/reports/sa/billing', '--days', '5']);
  t.equal(issued.code, 0, issued.stderr);
  t.match(issued.stdout, /client-reporting\.crt/);
  t.equal((await stat(path.join(certs, 'client-reporting.key'))).mode & 0o777, 0o600, 'key is 0600');
  const leaf = new X509Certificate(await readFile(path.join(certs, 'client-reporting.crt')));
  t.ok(leaf.verify(new X509Certificate(pki!.intermediate.certPem).publicKey), 'signed by the intermediate');
  t.same(leaf.keyUsage, ['1.3.6.1.5.5.7.3.2'], 'clientAuth only');
  t.equal(leaf.subjectAltName, 'URI:spiffe://example.org/ns/reports/sa/billing');
  t.match(leaf.subject, /CN=reporting/);
  t.match(leaf.subject, /OU=payments/);

  const first = await startDemoStack(stackOpts);
  t.same(await get(first.address.port, certs, 'client-reporting', '/orders/1'), { status: 200, code: null }, 'the new certificate is accepted and allowed by its SPIFFE ID');
  await first.close();

  const before = await crlOf(certs, 'intermediate.crl.pem');
  const revoked = await cli(['pki', 'revoke', '--dir', certs, '--cert', path.join(certs, 'client-reporting.crt'), '--reason', 'keyCompromise']);
  t.equal(revoked.code, 0, revoked.stderr);
  t.match(revoked.stdout, /CRL number 2, 2 revoked serials/);
  const after = await crlOf(certs, 'intermediate.crl.pem');
  t.ok(verifyCrlSignature(after, new X509Certificate(pki!.intermediate.certPem)).ok, 'the new CRL is signed by the intermediate');
  t.equal(after.crlNumber, before.crlNumber! + 1n, 'CRL number goes up');
  t.equal(after.revokedCount, 2);
  t.match(after.revoked.lookup(leaf.serialNumber), { revoked: true, reason: 'keyCompromise' });
  t.match(after.revoked.lookup(pki!.clients['revoked']!.serial), { revoked: true, reason: 'keyCompromise' }, 'earlier entries are kept');

  const second = await startDemoStack(stackOpts);
  t.teardown(() => second.close());
  t.same(await get(second.address.port, certs, 'client-reporting', '/orders/1'), { status: 401, code: 'GW_ERR_CLIENT_CERT_REVOKED' });
  t.same(await get(second.address.port, certs, 'client-billing', '/orders/1'), { status: 200, code: null }, 'others unaffected');

  // Revoking again changes nothing; by serial into the root's CRL; then re-sign both.
  const revoke = (o: Partial<Parameters<typeof runPkiRevoke>[0]>) => captured(() => runPkiRevoke({ dir: certs, cert: undefined, serial: undefined, ca: undefined, reason: undefined, ...o }));
  const again = await revoke({ serial: leaf.serialNumber });
  t.equal(again.code, 0);
  t.match(again.stdout, /already on/);
  t.equal((await crlOf(certs, 'intermediate.crl.pem')).crlNumber, after.crlNumber, 'unchanged');
  const byRoot = await revoke({ serial: '0a:bc:de', ca: 'root' });
  t.equal(byRoot.code, 0, byRoot.stderr);
  t.ok((await crlOf(certs, 'root.crl.pem')).revoked.has('0ABCDE'));
  const resigned = await captured(() => runPkiCrl({ dir: certs }));
  t.equal(resigned.code, 0, resigned.stderr);
  const rootCrl = await crlOf(certs, 'root.crl.pem');
  const intCrl = await crlOf(certs, 'intermediate.crl.pem');
  t.equal(rootCrl.crlNumber, 3n);
  t.equal(intCrl.crlNumber, after.crlNumber! + 1n);
  t.equal(intCrl.revokedCount, 2, 'same entries after re-signing');
  t.equal(rootCrl.revokedCount, 1);
});

t.test('issue and revoke: server certificates, refusals and usage errors', async (t) => {
  const root = t.testdir({ empty: {} });
  const { certs } = await shippedLayout(root);
  // Through the real binary: option parsing and the exit code.
  const [server, unknownFlag] = await Promise.all([
    cli(['pki', 'issue', '--dir', certs, '--name', 'api', '--server', '--dns', 'api.internal', '--ip', '127.0.0.1']),
    cli(['pki', 'issue', '--dir', certs, '--name', 'z', '--bogus']),
  ]);
  t.equal(server.code, 0, server.stderr);
  const srv = new X509Certificate(await readFile(path.join(certs, 'server-api.crt')));
  t.same(srv.keyUsage, ['1.3.6.1.5.5.7.3.1'], 'serverAuth only');
  t.equal(srv.subjectAltName, 'DNS:api.internal, IP Address:127.0.0.1');
  t.equal(unknownFlag.code, 2);
  t.match(unknownFlag.stderr, /Unknown option '--bogus'/);

  // The same functions in process, for the table of refusals.
  const none: PkiIssueOptions = { dir: certs, name: undefined, cn: undefined, ou: undefined, o: undefined, spiffe: undefined, uri: undefined, dns: undefined, ip: undefined, email: undefined, days: undefined, server: false, force: false };
  const issue = (o: Partial<PkiIssueOptions>) => captured(() => runPkiIssue({ ...none, ...o }));
  const revoke = (o: Partial<Parameters<typeof runPkiRevoke>[0]>) => captured(() => runPkiRevoke({ dir: certs, cert: undefined, serial: undefined, ca: undefined, reason: undefined, ...o }));
  // Sequential on purpose: `captured` swaps process.stdout while a command runs.
  for (const [what, run, code, re] of [
    ['no --name', () => issue({}), 2, /--name is required/],
    ['bad name', () => issue({ name: '../x' }), 2, /--name must be/],
    ['server without a name', () => issue({ name: 'web', server: true }), 2, /needs at least one --dns or --ip/],
    ['bad SPIFFE ID', () => issue({ name: 'x', spiffe: 'spiffe://Example.org/x' }), 2, /--spiffe must be a SPIFFE ID/],
    ['two SPIFFE IDs', () => issue({ name: 'x', spiffe: 'spiffe://example.org/a', uri: ['spiffe://example.org/b'] }), 2, /at most one SPIFFE ID/],
    ['outlives the CA', () => issue({ name: 'y', days: '800' }), 1, /would outlive the intermediate CA/],
    ['existing name', () => issue({ name: 'billing' }), 1, /already exists.*--force/],
    ['--cert and --serial', () => revoke({ cert: path.join(certs, 'client-billing.crt'), serial: '01' }), 2, /exactly one of/],
    ['neither', () => revoke({}), 2, /exactly one of/],
    ['bad reason', () => revoke({ serial: '01', reason: 'bored' }), 2, /--reason must be one of/],
    ['bad serial', () => revoke({ serial: 'xyz' }), 2, /hex serial/],
    ['root CA', () => revoke({ cert: path.join(certs, 'root-ca.crt') }), 1, /root CA cannot be revoked/],
    ['foreign certificate', () => revoke({ cert: path.join(certs, 'nope.crt') }), 1, /cannot read a certificate/],
    ['no PKI there', () => revoke({ dir: path.join(root, 'empty'), serial: '01' }), 1, /pki init/],
  ] as const) {
    const r = await run();
    t.equal(r.code, code, `${what}: exit ${code}`);
    t.match(r.stderr, re, what);
  }
});
