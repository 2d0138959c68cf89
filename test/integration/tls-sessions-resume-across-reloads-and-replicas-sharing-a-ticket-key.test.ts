// TLS session tickets: a reload keeps the ticket keys (setSecureContext would otherwise replace
// them and every client would pay a full handshake after each reload); two replicas that share
// tls.sessionTickets.keyFile resume each other's sessions, and two without it do not; a new key
// file is put in force by a reload. Resumption is safe because revocation is checked per request
// (test/security/revoked-client-cannot-resume-tls-session.test.ts).
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import tls from 'node:tls';
import t from 'tap';
import type { Issued } from '../../src/pki/dev-pki.js';
import { gatewayYaml, makeTestPki, startGateway, startUpstream, tempDir, writePkiFiles, type TestPki } from '../helpers/harness.js';

interface Visit {
  readonly status: number;
  readonly resumed: boolean;
  readonly session: Buffer | null;
}

/** One request on a new TLS connection, offering `session`; returns the session the server issued. */
function visit(port: number, pki: TestPki, client: Issued, session: Buffer | null): Promise<Visit> {
  return new Promise((resolve, reject) => {
    let issued: Buffer | null = null;
    let resumed = false;
    let text = '';
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: pki.root.certPem, cert: client.chainPem, key: client.keyPem, ...(session ? { session } : {}) });
    sock.setTimeout(10_000, () => sock.destroy(new Error('timeout')));
    sock.on('session', (s: Buffer) => (issued = s));
    sock.on('secureConnect', () => {
      // Read while the connection is up: after close the socket no longer knows.
      resumed = sock.isSessionReused();
      sock.write('GET /orders/1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
    });
    sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
    sock.on('error', reject);
    sock.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
      resolve({ status, resumed, session: issued });
    });
  });
}

t.test('session tickets survive reloads and are shared by replicas with one key file', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const upstream = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => upstream.close());
  const billing = pki.clients['billing']!;
  await writeFile(path.join(dir, 'ticket.key'), randomBytes(48));
  const withKey = gatewayYaml({ upstreamPort: upstream.port }).replace('  clientCA: ./ca-bundle.pem\n', '  clientCA: ./ca-bundle.pem\n  sessionTickets: { keyFile: ./ticket.key }\n');
  const a = await startGateway({ dir, yaml: withKey, file: path.join(dir, 'a.yaml') });
  t.teardown(() => a.close());
  const b = await startGateway({ dir, yaml: withKey, file: path.join(dir, 'b.yaml') });
  t.teardown(() => b.close());

  const first = await visit(a.port, pki, billing, null);
  t.equal(first.status, 200);
  t.notOk(first.resumed);
  t.ok(first.session, 'the server issued a session ticket');

  const onB = await visit(b.port, pki, billing, first.session);
  t.equal(onB.status, 200);
  t.ok(onB.resumed, 'a replica with the same key file resumes the session');

  t.match(await a.gateway.reload('test'), { result: 'success', generation: 2 });
  const afterReload = await visit(a.port, pki, billing, first.session);
  t.ok(afterReload.resumed, 'a reload keeps the ticket keys');
  t.equal(afterReload.status, 200);

  // Two replicas without a key file each generate their own.
  const plain = gatewayYaml({ upstreamPort: upstream.port });
  const c = await startGateway({ dir, yaml: plain, file: path.join(dir, 'c.yaml') });
  t.teardown(() => c.close());
  const d = await startGateway({ dir, yaml: plain, file: path.join(dir, 'd.yaml') });
  t.teardown(() => d.close());
  const onC = await visit(c.port, pki, billing, null);
  const cOnD = await visit(d.port, pki, billing, onC.session);
  t.equal(cOnD.status, 200);
  t.notOk(cOnD.resumed, 'without a shared key file another replica does a full handshake');
  t.ok((await c.gateway.reload('test')).result === 'success' && (await visit(c.port, pki, billing, onC.session)).resumed, 'the generated key survives a reload too');

  // A new key file, put in force by a reload: old tickets no longer resume there.
  await writeFile(path.join(dir, 'ticket.key'), randomBytes(48));
  t.match(await a.gateway.reload('test'), { result: 'success', generation: 3 });
  const rotated = await visit(a.port, pki, billing, first.session);
  t.equal(rotated.status, 200, 'the client falls back to a full handshake');
  t.notOk(rotated.resumed, 'a ticket under the old key is not accepted after the key rotated');
  t.same(a.gateway.runtime.current.serverTls.ticketKeys.length, 48);
});
