// A CRL changed on disk (replaced file, or a Kubernetes-style `..data` symlink swap) is picked up
// without a restart: a client connected with keep-alive that the new CRL revokes has its socket
// closed and cannot make another request, while an unrevoked client's connection carries on.
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { replaceFile, waitForGeneration } from '../helpers/crl-files.js';
import { makeTestPki, request, startStack, type TestPki } from '../helpers/harness.js';

function keepAliveAgent(pki: TestPki, name: string) {
  const c = pki.clients[name]!;
  return new https.Agent({ keepAlive: true, maxSockets: 1, ca: pki.root.certPem, cert: c.chainPem, key: c.keyPem });
}

function closed(socket: TLSSocket): Promise<void> {
  return socket.destroyed ? Promise.resolve() : new Promise((r) => socket.once('close', () => r()));
}

t.test('replaced CRL file revokes a keep-alive client and closes its socket', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({ pki, crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem]\n  revocation: { pollInterval: 100ms }' });
  t.teardown(() => s.close());
  const billingAgent = keepAliveAgent(pki, 'billing');
  const opsAgent = keepAliveAgent(pki, 'ops-admin');
  t.teardown(() => {
    billingAgent.destroy();
    opsAgent.destroy();
  });
  const first = await request(s.gw.port, null, '', { path: '/orders/1', agent: billingAgent });
  t.equal(first.status, 200);
  const again = await request(s.gw.port, null, '', { path: '/orders/2', agent: billingAgent });
  t.equal(again.socket, first.socket, 'control: the keep-alive connection is reused');
  const ops = await request(s.gw.port, null, '', { path: '/orders/3', agent: opsAgent });
  t.equal(ops.status, 200);

  const from = s.gw.gateway.revocation.get('clients')!.index.generation;
  const crl = await createCrl(pki.intermediate, { revoked: [{ serial: pki.clients['revoked']!.serial }, { serial: pki.clients['billing']!.serial, reason: 'affiliationChanged' }], crlNumber: 2 });
  await replaceFile(path.join(s.dir, 'intermediate.crl.pem'), crl.pem);
  await waitForGeneration(s.gw.gateway, 'clients', from);
  await closed(first.socket);
  t.ok(first.socket.destroyed, 'the revoked client\'s live socket was closed by the gateway');
  t.notOk(ops.socket.destroyed, 'the unrevoked client\'s connection is untouched');

  const after = await request(s.gw.port, null, '', { path: '/orders/4', agent: billingAgent });
  t.equal(after.status, 401);
  t.match(after.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
  const opsAfter = await request(s.gw.port, null, '', { path: '/orders/5', agent: opsAgent });
  t.equal(opsAfter.status, 200);
  t.equal(opsAfter.socket, ops.socket, 'and keeps being served on the same connection');
  t.match(s.gw.logs.find((l) => l['event'] === 'client-revoked' && l['when'] === 'live-connection'), { serial: pki.clients['billing']!.serial, reason: 'affiliationChanged' });
});

t.test('Kubernetes-style ..data symlink swap in a CRL directory is picked up', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({
    pki,
    crlYaml: '  crl: [./crls]\n  revocation: { pollInterval: 100ms }',
    beforeStart: async (dir) => {
      // The layout kubelet writes for a mounted Secret: files are symlinks through ..data,
      // which points at a timestamped directory; an update swaps ..data atomically.
      const crls = path.join(dir, 'crls');
      await mkdir(path.join(crls, '..2026_11_27_v1'), { recursive: true });
      await writeFile(path.join(crls, '..2026_11_27_v1', 'root.crl.pem'), pki.rootCrl.pem);
      await writeFile(path.join(crls, '..2026_11_27_v1', 'intermediate.crl.pem'), pki.intermediateCrl.pem);
      await symlink('..2026_11_27_v1', path.join(crls, '..data'));
      await symlink('..data/root.crl.pem', path.join(crls, 'root.crl.pem'));
      await symlink('..data/intermediate.crl.pem', path.join(crls, 'intermediate.crl.pem'));
    },
  });
  t.teardown(() => s.close());
  const agent = keepAliveAgent(pki, 'billing');
  t.teardown(() => agent.destroy());
  const first = await request(s.gw.port, null, '', { path: '/orders/1', agent });
  t.equal(first.status, 200);
  t.equal(s.gw.gateway.revocation.get('clients')!.describe().length, 2, 'both CRLs loaded from the directory');

  const crls = path.join(s.dir, 'crls');
  const from = s.gw.gateway.revocation.get('clients')!.index.generation;
  const crl = await createCrl(pki.intermediate, { revoked: [{ serial: pki.clients['billing']!.serial }], crlNumber: 2 });
  await mkdir(path.join(crls, '..2026_11_27_v2'));
  await writeFile(path.join(crls, '..2026_11_27_v2', 'root.crl.pem'), pki.rootCrl.pem);
  await writeFile(path.join(crls, '..2026_11_27_v2', 'intermediate.crl.pem'), crl.pem);
  await symlink('..2026_11_27_v2', path.join(crls, '..data_tmp'));
  await rename(path.join(crls, '..data_tmp'), path.join(crls, '..data'));
  await waitForGeneration(s.gw.gateway, 'clients', from);
  await closed(first.socket);
  const after = await request(s.gw.port, null, '', { path: '/orders/2', agent });
  t.equal(after.status, 401);
  t.match(after.json, { error: { code: 'GW_ERR_CLIENT_CERT_REVOKED' } });
});

t.test('SIGHUP-style reload applies a new CRL at once', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({ pki, crlYaml: '  crl: [./root.crl.pem, ./intermediate.crl.pem]\n  revocation: { pollInterval: 1h }' });
  t.teardown(() => s.close());
  t.equal((await s.send(pki.clients['intruder']!, { path: '/admin' })).status, 403);
  const crl = await createCrl(pki.intermediate, { revoked: [{ serial: pki.clients['intruder']!.serial }], crlNumber: 3 });
  await replaceFile(path.join(s.dir, 'intermediate.crl.pem'), crl.pem);
  await s.gw.gateway.reload('SIGHUP');
  const r = await s.send(pki.clients['intruder']!, { path: '/admin' });
  t.equal(r.status, 401, 'revocation is checked before policy');
  const formerlyRevoked = await s.send(pki.clients['revoked']!, { path: '/orders' });
  t.equal(formerlyRevoked.status, 403, 'the new CRL no longer lists the previously revoked client: it now reaches policy (which denies it)');
});
