// One worker thread of the Node load generator (see loadgen.mjs). Modes:
//   ka  closed loop over keep-alive connections with undici's Pool.dispatch (the cheapest undici
//       API): each connection carries one request at a time, the next is sent when one completes.
//       With preconnect, every connection is opened (one request each) before the clock starts.
//       With rate (req/s for this thread), each connection sends at a fixed pace instead
//       (conns / rate apart; at once when the previous response came later): latency at a
//       given load rather than at saturation.
//   hs  a new TLS connection per request (raw tls.connect + one HTTP/1.1 request with
//       Connection: close); with resume, each loop offers the session ticket it got last time.
import { createSecureContext, connect } from 'node:tls';
import { parentPort, workerData } from 'node:worker_threads';
import { Pool } from 'undici';
import { Histogram } from './histogram.mjs';

const cfg = workerData;
const hist = new Histogram();
let requests = 0;
let errors = 0;
let non2xx = 0;
let reused = 0;
let bytesIn = 0;
const errorKinds = {};
const secureContext = createSecureContext({ cert: cfg.cert, key: cfg.key, ca: cfg.ca });
const body = cfg.bodyBytes > 0 ? Buffer.alloc(cfg.bodyBytes, 'x') : null;

function noteError(err) {
  errors++;
  const k = err?.code ?? err?.message ?? String(err);
  errorKinds[k] = (errorKinds[k] ?? 0) + 1;
}

const origin = `https://127.0.0.1:${cfg.port}`;
const headers = body ? { 'content-type': 'application/octet-stream' } : undefined;
const reqOpts = { origin, path: cfg.path, method: cfg.method, headers, body };
let pool = null;

function makePool() {
  return new Pool(origin, {
    connections: cfg.conns,
    pipelining: 1,
    keepAliveTimeout: 120_000,
    headersTimeout: 60_000,
    bodyTimeout: 60_000,
    connect: { secureContext, servername: cfg.servername, rejectUnauthorized: false, timeout: 60_000 },
  });
}

/** One request on every connection, all at once, so that the pool opens them all. */
function preconnect() {
  pool = makePool();
  return Promise.all(
    Array.from({ length: cfg.conns }, () =>
      pool.request(reqOpts).then(
        (r) => r.body.dump(),
        (err) => noteError(err),
      ),
    ),
  ).then(() => {
    errors = 0;
  });
}

function runKeepAlive(startAt, endAt) {
  return new Promise((resolve) => {
    pool ??= makePool();
    const opts = reqOpts;
    let active = 0;
    const period = cfg.rate > 0 ? (cfg.conns / cfg.rate) * 1000 : 0;
    const loop = (firstAt) => {
      let due = firstAt;
      const next = () => {
        if (period === 0) return fire(next);
        due += period;
        const wait = due - performance.now();
        if (wait > 0) setTimeout(fire, wait, next);
        else fire(next);
      };
      return next;
    };
    const fire = (next) => {
      if (performance.now() >= endAt) {
        if (--active === 0) pool.destroy().then(resolve, resolve);
        return;
      }
      const t0 = performance.now();
      let status = 0;
      pool.dispatch(opts, {
        onRequestStart() {},
        onResponseStart(_c, statusCode) {
          status = statusCode;
        },
        onResponseData(_c, chunk) {
          bytesIn += chunk.length;
        },
        onResponseEnd() {
          const t1 = performance.now();
          if (t1 <= endAt) {
            requests++;
            if (status < 200 || status >= 400) non2xx++;
            hist.record((t1 - t0) * 1000);
          }
          next();
        },
        onResponseError(_c, err) {
          noteError(err);
          // Back off a little so a dead target does not turn into a busy loop.
          setTimeout(next, 10);
        },
      });
    };
    const begin = () => {
      const now = performance.now();
      for (let i = 0; i < cfg.conns; i++) {
        active++;
        // Paced connections start staggered over one period.
        const first = now + (period * i) / cfg.conns;
        const next = loop(first);
        if (period === 0) fire(next);
        else setTimeout(fire, first - now, next);
      }
    };
    setTimeout(begin, Math.max(0, startAt - performance.now()));
  });
}

const REQUEST = (path) => Buffer.from(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);

function runHandshakes(startAt, endAt) {
  return new Promise((resolve) => {
    const req = REQUEST(cfg.path);
    let active = 0;
    const loop = () => {
      let session;
      const one = () => {
        if (performance.now() >= endAt) {
          if (--active === 0) resolve();
          return;
        }
        const t0 = performance.now();
        let head = null;
        let done = false;
        const s = connect({ host: '127.0.0.1', port: cfg.port, secureContext, servername: cfg.servername, rejectUnauthorized: false, session: cfg.resume ? session : undefined });
        if (cfg.resume) s.on('session', (sess) => (session = sess));
        s.setTimeout(10_000, () => s.destroy(new Error('timeout')));
        s.once('secureConnect', () => {
          if (s.isSessionReused()) reused++;
          s.write(req);
        });
        s.on('data', (c) => {
          bytesIn += c.length;
          if (head === null) head = c.subarray(0, 12).toString('latin1');
        });
        const finish = (err) => {
          if (done) return;
          done = true;
          const t1 = performance.now();
          if (err) noteError(err);
          else if (t1 <= endAt) {
            requests++;
            if (!/^HTTP\/1\.[01] 2/.test(head ?? '')) non2xx++;
            hist.record((t1 - t0) * 1000);
          }
          setImmediate(one);
        };
        s.once('error', finish);
        s.once('close', () => finish(head === null ? new Error('closed without a response') : null));
      };
      active++;
      one();
    };
    setTimeout(() => {
      for (let i = 0; i < cfg.conns; i++) loop();
    }, Math.max(0, startAt - performance.now()));
  });
}

parentPort.on('message', async (msg) => {
  if (msg.type === 'prepare') {
    if (cfg.mode === 'ka' && cfg.preconnect) await preconnect();
    parentPort.postMessage({ type: 'ready' });
    return;
  }
  const { startAt, endAt } = msg;
  // performance.now() differs between threads: the parent sends epoch times, converted here.
  const offset = Date.now() - performance.now();
  const s = startAt - offset;
  const e = endAt - offset;
  if (cfg.mode === 'ka') await runKeepAlive(s, e);
  else await runHandshakes(s, e);
  parentPort.postMessage({ type: 'result', hist: hist.toJSON(), requests, errors, non2xx, reused, bytesIn, errorKinds });
});
