// `npm run demo` end to end: on a fresh directory it creates the dev PKI, starts the demo services
// and the gateway with (a copy of) config/gateway.yaml on free ports, prints the tour with every
// answer as expected, keeps serving, and on SIGINT drains and exits 0.
import { spawn } from 'node:child_process';
import { access, readFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import t from 'tap';
import { REPO, shippedLayout } from '../helpers/demo-cli.js';

const EXPECTED: [scenario: RegExp, answer: string][] = [
  [/allowed service/, '200 orders'],
  [/allowed by subject/, '200 inventory'],
  [/denied service/, '403 GW_ERR_POLICY_DENIED'],
  [/unknown identity/, '403 GW_ERR_POLICY_DENIED'],
  [/no client certificate/, '401 GW_ERR_CLIENT_CERT_MISSING'],
  [/revoked certificate/, '401 GW_ERR_CLIENT_CERT_REVOKED'],
  [/path trick/, '400 GW_ERR_PATH_INVALID'],
  [/method not routed/, '404 GW_ERR_ROUTE_NOT_FOUND'],
];

t.test('npm run demo: tour, stays up, stops on SIGINT', async (t) => {
  const pkg = JSON.parse(await readFile(path.join(REPO, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  t.equal(pkg.scripts['demo'], 'node dist/demo/run-demo.js', 'npm run demo runs this entry point');

  const root = t.testdir();
  const { config, certs } = await shippedLayout(root, { pki: false });
  const child = spawn(process.execPath, [path.join(REPO, 'dist', 'demo', 'run-demo.js'), '--config', config], {
    cwd: root,
    env: { ...process.env, DEMO_GATEWAY_PORT: '0', DEMO_ORDERS_PORT: '0', DEMO_INVENTORY_PORT: '0', NO_COLOR: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo did not finish its tour:\n${stdout}\n${stderr}`)), 30_000);
    child.stdout.on('data', () => {
      if (stdout.includes('Press Ctrl-C')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`demo exited early with ${code}:\n${stdout}\n${stderr}`));
    });
  });

  t.match(stdout, /PKI +certs\/ \(created now/, 'the PKI is created on first run');
  await access(path.join(certs, 'root-ca.crt'));
  t.notMatch(stdout, /\u001b\[/, 'no colours when stdout is not a terminal');
  const rows = stdout.split('\n').filter((l) => /^\d+ {2}/.test(l));
  t.equal(rows.length, EXPECTED.length, 'one row per tour step');
  EXPECTED.forEach(([scenario, answer], i) => {
    const row = rows[i] ?? '';
    t.match(row, scenario, `row ${i + 1} scenario`);
    t.match(row, new RegExp(` ${answer} +ok `), `row ${i + 1}: ${answer}`);
  });
  t.match(stdout, /^8\/8 answers as expected$/m);
  t.match(stdout, /curl --cacert certs\/ca-bundle\.pem --cert certs\/client-billing\.crt --key certs\/client-billing\.key https:\/\/localhost:\d+\/orders\/42/);

  // Still serving after the tour.
  const port = Number(/gateway +https:\/\/localhost:(\d+)/.exec(stdout)?.[1]);
  t.ok(port > 0, 'the gateway port is printed');
  const [ca, cert, key] = await Promise.all(['ca-bundle.pem', 'client-billing.crt', 'client-billing.key'].map((f) => readFile(path.join(certs, f), 'utf8')));
  const status = await new Promise<number>((resolve, reject) => {
    https
      .get({ host: '127.0.0.1', port, servername: 'localhost', path: '/orders/1', ca, cert, key, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      })
      .on('error', reject);
  });
  t.equal(status, 200, 'the stack keeps running after the tour');

  child.kill('SIGINT');
  t.equal(await exited, 0, 'exit 0 after Ctrl-C');
  t.match(stdout, /SIGINT: stopping the gateway \(draining\)[\s\S]*stopped\n$/);
  t.equal(stderr, '');
});
