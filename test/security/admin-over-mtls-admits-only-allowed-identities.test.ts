// Defends the admin listener served over mTLS (admin.tls + admin.allow): /metrics, /status and
// POST /reload need a client certificate that chains to admin.clientCA and that admin.allow admits
// (deny by default); no certificate is 401, another identity 403, a certificate from an untrusted
// CA 401, and none of them runs a reload. /healthz and /readyz stay open to a TLS client without a
// certificate, as Kubernetes' HTTPS probes are. The config refuses tls without allow and the
// reverse, and `start` refuses admin material that does not load, naming the key.
import { spawn } from 'node:child_process';
import https from 'node:https';
import path from 'node:path';
import { pino } from 'pino';
import t from 'tap';
import { AdminServer } from '../../src/admin/admin-server.js';
import { loadAdminTls } from '../../src/admin/admin-tls.js';
import { gatewayAdminBackend } from '../../src/admin/gateway-backend.js';
import { parseConfigText } from '../../src/config/load-config.js';
import type { Issued } from '../../src/pki/dev-pki.js';
import { gatewayYaml, startStack } from '../helpers/harness.js';

const ADMIN_TLS = `admin:
  listen: { host: 127.0.0.1, port: 0 }
  tls: { cert: ./gateway.crt, key: ./gateway.key, clientCA: ./ca-bundle.pem }
  allow:
    - subject: { CN: ops-admin, OU: sre }`;

function get(port: number, ca: string, client: Issued | null, pathname: string, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      { host: '127.0.0.1', port, servername: 'localhost', path: pathname, method, agent: false, ca, ...(client ? { cert: client.chainPem, key: client.keyPem } : {}) },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end();
  });
}

t.test('the admin listener over mTLS admits only identities in admin.allow', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const { pki, dir } = s;
  const yaml = gatewayYaml({ upstreamPort: s.upstream.port, admin: ADMIN_TLS });
  const config = parseConfigText(yaml, path.join(dir, 'admin.yaml'));
  const tls = await loadAdminTls(config);
  t.ok(tls, 'admin TLS material loads');
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void logs.push(JSON.parse(l) as Record<string, unknown>) });
  const admin = new AdminServer({ host: '127.0.0.1', port: 0, backend: gatewayAdminBackend(s.gw.gateway), logger, tls });
  const { port } = await admin.listen();
  t.teardown(() => admin.close());
  const ca = pki.root.certPem;
  const ops = pki.clients['ops-admin']!;
  const billing = pki.clients['billing']!;

  t.equal((await get(port, ca, null, '/healthz')).status, 200, 'probes need no certificate: /healthz');
  t.equal((await get(port, ca, null, '/readyz')).status, 200, 'and /readyz');
  for (const p of ['/metrics', '/status']) {
    t.equal((await get(port, ca, null, p)).status, 401, `${p} without a certificate: 401`);
    t.equal((await get(port, ca, billing, p)).status, 403, `${p} for an identity not in admin.allow: 403`);
    t.equal((await get(port, ca, pki.rogueClient, p)).status, 401, `${p} with a certificate from an untrusted CA: 401`);
  }
  const generation = s.gw.gateway.runtime.current.generation;
  t.equal((await get(port, ca, null, '/reload', 'POST')).status, 401);
  t.equal((await get(port, ca, billing, '/reload', 'POST')).status, 403);
  t.equal(s.gw.gateway.runtime.current.generation, generation, 'refused reload requests ran no reload');
  t.ok(logs.some((l) => l['event'] === 'admin-refused' && l['status'] === 403), 'refusals are logged');

  const metrics = await get(port, ca, ops, '/metrics');
  t.equal(metrics.status, 200, 'the allowed identity reads /metrics');
  t.match(metrics.body, /mtls_gateway_config_generation/);
  t.equal((await get(port, ca, ops, '/status')).status, 200);
  const reload = await get(port, ca, ops, '/reload', 'POST');
  t.equal(reload.status, 200, 'and may reload');
  t.match(JSON.parse(reload.body), { result: 'success', generation: generation + 1 });
});

t.test('admin.tls and admin.allow come together', async (t) => {
  const base = gatewayYaml({ upstreamPort: 1 });
  t.throws(() => parseConfigText(base.replace('admin: { listen: { host: 127.0.0.1, port: 0 } }', 'admin: { tls: { cert: a, key: b, clientCA: c } }'), '/x/gateway.yaml'), /admin: set "tls" and "allow" together/);
  t.throws(() => parseConfigText(base.replace('admin: { listen: { host: 127.0.0.1, port: 0 } }', 'admin: { allow: [{ subject: { CN: x } }] }'), '/x/gateway.yaml'), /admin: set "tls" and "allow" together/);
  t.throws(() => parseConfigText(base.replace('admin: { listen: { host: 127.0.0.1, port: 0 } }', 'admin: { tls: { cert: a, key: b, clientCA: c }, allow: [] }'), '/x/gateway.yaml'), /admin\.allow/);
  t.throws(() => parseConfigText(base.replace('admin: { listen: { host: 127.0.0.1, port: 0 } }', 'admin: { tls: { cert: a, key: b, clientCA: c }, allow: [{}] }'), '/x/gateway.yaml'), /admin\.allow\[0\]/);
});

t.test('start refuses admin material that does not load, naming the key', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const file = path.join(s.dir, 'bad-admin.yaml');
  const { writeFile } = await import('node:fs/promises');
  await writeFile(file, gatewayYaml({ upstreamPort: s.upstream.port, admin: ADMIN_TLS.replace('key: ./gateway.key', 'key: ./gateway-client.key') }));
  const cli = path.resolve('dist/cli/main.js');
  const out = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [cli, 'start', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
  t.equal(out.code, 1, 'exit 1');
  t.match(out.stderr, /admin\.tls\.key: private key does not belong to the certificate/);
});
