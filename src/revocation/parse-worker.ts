/**
 * Revocation: the worker-thread entry that parse-off-thread.ts starts for a big CRL file. Being an
 * entry point, it sets itself up at import, the one place where that is the point; the work lives
 * in runParseJob so the wire format has a single owner. One job per worker: once the listener
 * has run, nothing keeps the thread alive.
 */

import { isMainThread, parentPort } from 'node:worker_threads';
import { runParseJob } from './parse-off-thread.js';

const port = parentPort;
if (isMainThread || port === null) {
  throw new Error('parse-worker is a worker entry; use parseCrlFileOffThread from parse-off-thread.js');
}
port.once('message', (job: unknown) => {
  const { reply, transfer } = runParseJob(job);
  port.postMessage(reply, transfer);
});
