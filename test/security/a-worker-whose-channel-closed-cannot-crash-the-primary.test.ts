// Pins a robustness decision of `start --workers N`: the primary talks to its workers over
// node:cluster's IPC channel (src/cli/worker-channel.ts), and a message sent to a worker whose
// channel has just closed (it is stopping, crashing or being killed, and its 'exit' has not come
// yet) must fail that one question, never the primary. node:cluster reports such a send as an
// 'error' event on the Worker, after send() returned; unhandled, that event kills the primary and
// with it every worker. Found in CI: a reload the config file watch started raced the workers'
// disconnect during a SIGTERM, and the primary exited 1 within a second without a record.
//
// Real processes: a primary script (node:cluster, the built dist/cli/worker-channel.js) forks a
// worker that disconnects and exits; the moment the primary sees the channel close, it asks the
// worker a question, answers a 'hello' as serveInit would, and the worker side answers a question
// on a closed channel too. The primary must print the rejection and exit 0.
import { spawn } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { tempDir } from '../helpers/harness.js';

const CHANNEL = new URL('../../dist/cli/worker-channel.js', import.meta.url);

const SCRIPT = `
import cluster from 'node:cluster';
import { EventEmitter } from 'node:events';
import { askWorker, serveInit, answerPrimary } from ${JSON.stringify(CHANNEL.href)};
if (cluster.isPrimary) {
  const w = cluster.fork();
  serveInit(w, Buffer.alloc(48));
  w.process.once('disconnect', () => {
    // serveInit's answer to a hello that arrives as the channel closes.
    w.emit('message', { mtlsGateway: 1, kind: 'hello' });
    askWorker(w, 'status', 5000).then(
      () => console.log('ask: answered'),
      (err) => console.log('ask: rejected ' + (err.code ?? err.message)),
    );
  });
  w.on('exit', () => setTimeout(() => { console.log('primary: done'); process.exit(0); }, 200));
} else {
  // The worker answers a question that arrives as its channel closes (process.send on a closed
  // channel). cluster.worker.disconnect(), not process.disconnect(): node:cluster ends a worker at
  // once when its channel closes without it.
  answerPrimary(async () => 'late');
  setTimeout(() => {
    process.once('disconnect', () => {
      process.emit('message', { mtlsGateway: 1, kind: 'ask', id: 1, question: 'status' });
      setTimeout(() => { console.log('worker: still here'); process.exit(0); }, 300);
    });
    cluster.worker.disconnect();
  }, 200);
}
`;

t.setTimeout(60_000);

t.test('a question to a worker whose channel closed fails that question; the primary and the worker live on', async (t) => {
  const { dir, cleanup } = await tempDir();
  t.teardown(cleanup);
  const file = path.join(dir, 'primary.mjs');
  await writeFile(file, SCRIPT);
  const child = spawn(process.execPath, [pathToFileURL(file).pathname], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (err += c));
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  t.equal(code, 0, `the primary exits 0 (stdout:\n${out}\nstderr:\n${err})`);
  t.match(out, /ask: rejected ERR_IPC_CHANNEL_CLOSED/, 'the question is rejected with the channel error');
  t.match(out, /worker: still here/, 'the worker survived answering on a closed channel');
  t.match(out, /primary: done/);
  t.notMatch(err, /Unhandled 'error' event|ERR_IPC_CHANNEL_CLOSED/, 'nothing unhandled');
});
