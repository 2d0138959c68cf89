// With the file watch on (as `start` runs it), a change of the config file or of any file it names
// reloads the gateway by itself: an editor that rewrites the config, and a Kubernetes Secret update,
// which swaps the `..data` symlink to a new timestamped directory while the file names the config
// uses (`gateway.crt` -> `..data/gateway.crt`) stay the same. A broken file written the same way is
// refused and the running state stays.
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { issueLeaf } from '../../src/pki/dev-pki.js';
import { gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles } from '../helpers/harness.js';

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A Secret volume as the kubelet writes it: files in ..<timestamp>/, reached through ..data. */
async function writeSecret(dir: string, version: string, files: Record<string, string>): Promise<void> {
  const real = path.join(dir, `..${version}`);
  await mkdir(real);
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(real, name), text);
  const tmp = path.join(dir, '..data_tmp');
  await symlink(`..${version}`, tmp);
  await rename(tmp, path.join(dir, '..data'));
}

t.test('file changes reload the gateway, Kubernetes symlink swaps included', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const secret = path.join(dir, 'secret');
  await mkdir(secret);
  await writeSecret(secret, '2026_12_01_v1', { 'tls.crt': pki.gatewayServer.chainPem, 'tls.key': pki.gatewayServer.keyPem });
  for (const name of ['tls.crt', 'tls.key']) await symlink(`..data/${name}`, path.join(secret, name));
  const upstream = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem });
  t.teardown(() => upstream.close());
  const yaml = gatewayYaml({ upstreamPort: upstream.port }).replace('  cert: ./gateway.crt\n  key: ./gateway.key\n', '  cert: ./secret/tls.crt\n  key: ./secret/tls.key\n');
  const gw = await startGateway({ dir, yaml, watch: true });
  t.teardown(() => gw.close());
  const billing = pki.clients['billing']!;
  const serverCn = async () => ((await request(gw.port, billing, pki.root.certPem, { path: '/orders/1' })).socket as TLSSocket).getPeerCertificate().subject.CN;
  t.equal(await serverCn(), 'gateway');

  const rotated = await issueLeaf(pki.intermediate, { name: 'gateway-v2', subject: { CN: 'gateway-v2' }, dns: ['localhost'], ips: ['127.0.0.1'], usage: 'server' });
  await t.test('a Secret update (..data symlink swap) rotates the server certificate', async (t) => {
    await writeSecret(secret, '2026_12_01_v2', { 'tls.crt': rotated.chainPem, 'tls.key': rotated.keyPem });
    await until('generation 2', () => gw.gateway.runtime.current.generation === 2);
    t.equal(await serverCn(), 'gateway-v2', 'new handshakes get the new certificate');
    // The record follows the swap through the log stream; on a busy machine it can lag behind.
    await until('the reload record', () => gw.logs.some((l) => l['event'] === 'reload'));
    t.match(gw.logs.find((l) => l['event'] === 'reload'), { trigger: 'file-change', generation: 2 });
  });

  await t.test('a Secret update with a mismatched key is refused and the running pair stays', async (t) => {
    const other = await issueLeaf(pki.intermediate, { name: 'other', subject: { CN: 'other' }, dns: ['localhost'], usage: 'server' });
    const stray = await issueLeaf(pki.intermediate, { name: 'stray', subject: { CN: 'stray' }, usage: 'server' });
    await writeSecret(secret, '2026_12_01_v3', { 'tls.crt': other.chainPem, 'tls.key': stray.keyPem });
    await until('reload-refused', () => gw.logs.some((l) => l['event'] === 'reload-refused'));
    t.match(gw.logs.find((l) => l['event'] === 'reload-refused'), { code: 'GW_ERR_TLS_MATERIAL', key: 'tls.key', trigger: 'file-change' });
    t.equal(gw.gateway.runtime.current.generation, 2, 'generation unchanged');
    t.equal(await serverCn(), 'gateway-v2', 'the running certificate stays');
  });

  await t.test('an edit of the config file itself reloads the policy (once the Secret is whole again)', async (t) => {
    await writeSecret(secret, '2026_12_01_v4', { 'tls.crt': rotated.chainPem, 'tls.key': rotated.keyPem });
    await writeFile(path.join(dir, 'gateway.yaml'), yaml.replace('      - spiffe: spiffe://example.org/ns/*/sa/billing\n', ''));
    await until('policy reload', () => gw.gateway.runtime.current.config.routes[0]!.allow.length === 1);
    t.equal((await request(gw.port, billing, pki.root.certPem, { path: '/orders/1' })).status, 403, 'billing is no longer allowed');
  });
});
