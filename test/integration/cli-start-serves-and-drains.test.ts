// `mtls-gateway start` as a user runs it: it serves real mTLS traffic, logs JSON to stdout, and
// on SIGTERM stops accepting, finishes in-flight requests and exits 0. Also with --workers 2.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { gatewayYaml, makeTestPki, request, startUpstream, tempDir, writePkiFiles } from '../helpers/harness.js';

const CLI = new URL('../../dist/cli/main.js', import.meta.url).pathname;

function waitForPort(child: ChildProcess, lines: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`no listening line; output:\n${lines.join('\n')}`)), 20_000);
    child.stdout!.on('data', (c: Buffer) => {
      buf += c.toString();
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        lines.push(line);
        try {
          const rec = JSON.parse(line) as { event?: string; port?: number };
          if (rec.event === 'listening' && rec.port) {
            clearTimeout(timer);
            resolve(rec.port);
          }
        } catch {
          /* not JSON */
        }
      }
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited with ${code}; output:\n${lines.join('\n')}`));
    });
  });
}

for (const workers of [1, 2]) {
  t.test(`start with ${workers} worker(s): serves, then drains on SIGTERM`, async (t) => {
    const pki = await makeTestPki();
    const { dir, cleanup } = await tempDir();
    t.teardown(cleanup);
    await writePkiFiles(pki, dir);
    const timers: NodeJS.Timeout[] = [];
    const up = await startUpstream({
      server: pki.upstreams['orders']!,
      ca: pki.caBundlePem,
      handler: (req, res) => {
        const delay = req.url?.includes('slow') ? 700 : 0;
        timers.push(setTimeout(() => res.end('done'), delay));
      },
    });
    t.teardown(async () => {
      timers.forEach(clearTimeout);
      await up.close();
    });
    const file = path.join(dir, 'gateway.yaml');
    await writeFile(file, gatewayYaml({ upstreamPort: up.port }).replace('log: { level: debug }', 'log: { level: info }'));
    const child = spawn(process.execPath, [CLI, 'start', '--config', file, ...(workers > 1 ? ['--workers', String(workers)] : [])], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.teardown(() => {
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const lines: string[] = [];
    const port = await waitForPort(child, lines);
    const billing = pki.clients['billing']!;
    const ok = await request(port, billing, pki.root.certPem, { path: '/orders/1' });
    t.equal(ok.status, 200);
    t.equal(ok.body, 'done');

    const inFlight = request(port, billing, pki.root.certPem, { path: '/orders/slow' });
    await new Promise((r) => setTimeout(r, 200));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.kill('SIGTERM');
    const slow = await inFlight;
    t.equal(slow.status, 200, 'the in-flight request finished during the drain');
    t.equal(await exited, 0, 'exit code 0 after draining');
    t.ok(lines.some((l) => l.includes('"event":"draining"')), 'the drain is logged');
    t.ok(lines.some((l) => l.includes('Server listening at https://')), 'the listener is announced as https://');
    t.notOk(lines.some((l) => /listening at http:\/\//.test(l)), 'never as http://');
  });
}
