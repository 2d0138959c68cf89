// `mtls-gateway config check` as a user runs it: exit 0 with a summary for a good config, exit 1
// with every problem named by its key path for a bad one, exit 2 for usage errors.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { gatewayYaml, makeTestPki, tempDir, writePkiFiles } from '../helpers/harness.js';

const run = promisify(execFile);
const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const r = await run(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 30_000 });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

t.test('config check', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  await writePkiFiles(pki, dir);
  const good = path.join(dir, 'gateway.yaml');
  await writeFile(good, gatewayYaml({ upstreamPort: 9443 }));

  const ok = await cli(['config', 'check', '--config', good]);
  t.equal(ok.code, 0, ok.stderr);
  t.match(ok.stdout, /OK \(2 routes, 1 upstream\)/);

  const viaEnv = await cli(['config', 'check'], { MTLS_GATEWAY_CONFIG: good });
  t.equal(viaEnv.code, 0, 'MTLS_GATEWAY_CONFIG names the file');

  const bad = path.join(dir, 'bad.yaml');
  await writeFile(bad, gatewayYaml({ upstreamPort: 9443 }).replace('clientCA:', 'clientCa:').replace('spiffe: spiffe://example.org/ns/*/sa/billing', 'spiffe: spiffe://example.org/a**b'));
  const r = await cli(['config', 'check', '--config', bad]);
  t.equal(r.code, 1);
  t.match(r.stderr, /tls: unknown key "clientCa"/);

  const badRule = path.join(dir, 'bad-rule.yaml');
  await writeFile(badRule, gatewayYaml({ upstreamPort: 9443 }).replace('spiffe: spiffe://example.org/ns/*/sa/billing', 'spiffe: spiffe://example.org/a**b'));
  const rr = await cli(['config', 'check', '--config', badRule]);
  t.equal(rr.code, 1);
  t.match(rr.stderr, /routes\[0\]\.allow\[0\]\.spiffe/);

  const wrongKey = path.join(dir, 'wrong-key.yaml');
  await writeFile(wrongKey, gatewayYaml({ upstreamPort: 9443 }).replace('key: ./gateway.key', 'key: ./gateway-client.key'));
  const wk = await cli(['config', 'check', '--config', wrongKey]);
  t.equal(wk.code, 1);
  t.match(wk.stderr, /tls\.key: private key does not belong to the certificate/);

  const missing = await cli(['config', 'check', '--config', path.join(dir, 'nope.yaml')]);
  t.equal(missing.code, 1);
  t.match(missing.stderr, /cannot read config file .*nope\.yaml: ENOENT/);

  const usage = await cli(['config', 'check']);
  t.equal(usage.code, 2, 'no config given is a usage error');
  t.equal((await cli(['frobnicate'])).code, 2);
  t.equal((await cli(['start', '--bogus'])).code, 2);
});
