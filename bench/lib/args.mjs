// Command-line options of bench/run.mjs, with the defaults of a full run and of --quick.
import { parseArgs } from 'node:util';

export const ALL_SCENARIOS = ['ka', 'body64k', 'hs', 'idle', 'crl', 'ocsp', 'profile', 'failover', 'h2', 'grpc', 'storm'];
/**
 * Every target, in the order measured in each round: the origin alone, the gateway, then the
 * references (Node ones from the leanest up, nginx last). See "What runs" in bench/README.md.
 */
export const ALL_TARGETS = ['direct', 'gateway', 'gateway-warn', 'gateway-lean', 'gateway-node', 'floor', 'floor-headers', 'lean', 'lean-wasm', 'lean-work', 'fastify', 'nginx', 'nginx-log'];
/**
 * The Node reference proxies: plain mTLS proxies (no identity, policy or revocation, so only the
 * basic functional checks apply) speaking HTTP/1.1 only.
 */
export const NODE_REFERENCES = ['floor', 'floor-headers', 'lean', 'lean-wasm', 'lean-work', 'fastify'];
/** Targets measured when --targets is not given (nginx ones only when nginx is installed). */
export const DEFAULT_TARGETS = ['direct', 'gateway', 'gateway-node', 'floor', 'lean', 'fastify', 'nginx', 'nginx-log'];
/** Scenarios that start their own gateway and origins and compare with no other target. */
export const STANDALONE_SCENARIOS = ['failover', 'storm'];
const QUICK_SCENARIOS = ['ka', 'body64k', 'hs', 'idle', 'crl'];

export const USAGE = `Usage: node bench/run.mjs [options]      (after npm run build)

  --scenarios LIST   comma-separated, from: ${ALL_SCENARIOS.join(', ')}
                     (default: all; --quick: ${QUICK_SCENARIOS.join(', ')})
  --targets LIST     from: ${ALL_TARGETS.join(', ')}
                     (default: ${DEFAULT_TARGETS.join(', ')}; the nginx ones only if installed)
                     gateway runs at its defaults (log level info: an access record per request;
                     server.engine: lean), gateway-warn with log level warn, gateway-lean with
                     server.engine: lean written out (the default since 2026-12-03), gateway-node
                     with server.engine: node (node:http and undici's Pool, the switch back);
                     floor = node:https + undici, the least a Node proxy does
                     (lib/floor-proxy.mjs); floor-headers = the floor sending the headers
                     the gateway adds (XFCC, request id, x-forwarded-*); lean / lean-wasm = the
                     same job on raw TLS sockets with Node's / undici's llhttp
                     (lib/lean-floor.mjs); lean-work = lean-wasm also sending the gateway's
                     headers and writing its access record with the gateway's logging code
                     (LEAN_GATEWAY_WORK=1); fastify = Fastify + @fastify/http-proxy
                     (lib/fastify-proxy.mjs); nginx-log = nginx with a buffered access log
  --duration S       seconds per measurement (default 6; --quick 3)
  --rounds N         interleaved rounds per target (default 3; --quick 1)
  --warmup S         unrecorded warm-up per target and scenario (default 2; --quick 1)
  --conns N          concurrent connections (default 50)
  --workers N        gateway --workers and nginx worker_processes (default 1)
  --latency-rate R   req/s of the fixed-load latency run in scenario ka (default 1000; 0 skips it)
  --idle-conns N     connections held in the idle scenario (default 10000; --quick 1000)
  --idle-resume      open the idle connections with TLS session resumption (faster on a busy
                     machine; default: a full handshake each)
  --crl-sizes LIST   CRL entry counts for the crl scenario (default 100000,1000000)
  --gen auto|node    load generator: auto uses wrk/ab when installed, node forces the Node one
  --gen-threads N    worker threads of the Node generator (default: 1 for keep-alive load, 2 for
                     handshakes, whose client side costs about as much CPU as the server side)
  --upstream auto|nginx|node   the origin server (default auto: nginx when installed)
  --quiet-wait S     wait up to S s for an idle machine before each measurement (default 1; --quick 0)
  --profile-seconds S  length of the profiled load (default 10)
  --profile-kind ka|hs|post  what the profile scenario drives: keep-alive GET (ka, default), a full
                     handshake per request (hs, ab), or keep-alive POST of 64 KiB (post)
  --h2-conns N       HTTP/2 connections of the h2 and grpc scenarios (default 10)
  --h2-streams N     concurrent streams per HTTP/2 connection (default 10)
  --failover-seconds S  measured load per variant of the failover scenario; one origin of three
                     is killed at the middle (default 20)
  --checkout DIR     the mtls-gateway checkout to measure (default: the one holding bench/)
  --node PATH        the Node.js binary that runs the gateway (default: the one running the bench),
                     e.g. $(npx -y -p node@24 -- node -p process.execPath) to compare Node versions
  --out DIR          results directory (default bench/.work/results/<timestamp>)
  --no-readme        do not regenerate the results section of bench/README.md
  --quick            a short run (about 2 minutes)
  -h, --help
`;

function list(v) {
  return v.split(',').map((s) => s.trim()).filter(Boolean);
}

function num(name, v, { min = 0, int = true } = {}) {
  const n = Number(v);
  if (!Number.isFinite(n) || n < min || (int && !Number.isInteger(n))) throw new Error(`--${name} must be a number >= ${min} (got ${v})`);
  return n;
}

function profileKind(v) {
  if (v === undefined) return 'ka';
  if (v !== 'ka' && v !== 'hs' && v !== 'post') throw new Error(`--profile-kind must be ka, hs or post (got ${v})`);
  return v;
}

export function parseOptions(argv) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      scenarios: { type: 'string' },
      targets: { type: 'string' },
      duration: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      conns: { type: 'string' },
      workers: { type: 'string' },
      'latency-rate': { type: 'string' },
      'idle-conns': { type: 'string' },
      'crl-sizes': { type: 'string' },
      'idle-resume': { type: 'boolean' },
      gen: { type: 'string' },
      'gen-threads': { type: 'string' },
      upstream: { type: 'string' },
      'quiet-wait': { type: 'string' },
      'profile-seconds': { type: 'string' },
      'profile-kind': { type: 'string' },
      'h2-conns': { type: 'string' },
      'h2-streams': { type: 'string' },
      'failover-seconds': { type: 'string' },
      checkout: { type: 'string' },
      node: { type: 'string' },
      out: { type: 'string' },
      'no-readme': { type: 'boolean' },
      quick: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const quick = values.quick ?? false;
  const o = {
    help: values.help ?? false,
    quick,
    scenarios: values.scenarios ? list(values.scenarios) : quick ? QUICK_SCENARIOS : ALL_SCENARIOS,
    targets: values.targets ? list(values.targets) : null,
    duration: values.duration ? num('duration', values.duration, { min: 1, int: false }) : quick ? 3 : 6,
    rounds: values.rounds ? num('rounds', values.rounds, { min: 1 }) : quick ? 1 : 3,
    warmup: values.warmup !== undefined ? num('warmup', values.warmup, { int: false }) : quick ? 1 : 2,
    conns: values.conns ? num('conns', values.conns, { min: 1 }) : 50,
    workers: values.workers ? num('workers', values.workers, { min: 1 }) : 1,
    latencyRate: values['latency-rate'] !== undefined ? num('latency-rate', values['latency-rate']) : 1000,
    idleConns: values['idle-conns'] ? num('idle-conns', values['idle-conns'], { min: 1 }) : quick ? 1000 : 10_000,
    idleResume: values['idle-resume'] ?? false,
    crlSizes: values['crl-sizes'] ? list(values['crl-sizes']).map((s) => num('crl-sizes', s, { min: 1 })) : [100_000, 1_000_000],
    gen: values.gen ?? 'auto',
    genThreads: values['gen-threads'] ? num('gen-threads', values['gen-threads'], { min: 1 }) : 1,
    genThreadsHs: values['gen-threads'] ? num('gen-threads', values['gen-threads'], { min: 1 }) : 2,
    upstream: values.upstream ?? 'auto',
    quietWait: values['quiet-wait'] !== undefined ? num('quiet-wait', values['quiet-wait'], { int: false }) : quick ? 0 : 1,
    profileKind: profileKind(values['profile-kind']),
    profileSeconds: values['profile-seconds'] ? num('profile-seconds', values['profile-seconds'], { min: 1, int: false }) : 10,
    h2Conns: values['h2-conns'] ? num('h2-conns', values['h2-conns'], { min: 1 }) : 10,
    h2Streams: values['h2-streams'] ? num('h2-streams', values['h2-streams'], { min: 1 }) : 10,
    failoverSeconds: values['failover-seconds'] ? num('failover-seconds', values['failover-seconds'], { min: 2, int: false }) : 20,
    checkout: values.checkout ?? null,
    node: values.node ?? null,
    out: values.out ?? null,
    readme: !(values['no-readme'] ?? false),
  };
  for (const s of o.scenarios) if (!ALL_SCENARIOS.includes(s)) throw new Error(`unknown scenario "${s}" (known: ${ALL_SCENARIOS.join(', ')})`);
  if (o.targets) for (const t of o.targets) if (!ALL_TARGETS.includes(t)) throw new Error(`unknown target "${t}" (${ALL_TARGETS.join(', ')})`);
  if (!['auto', 'node'].includes(o.gen)) throw new Error('--gen must be auto or node');
  if (!['auto', 'nginx', 'node'].includes(o.upstream)) throw new Error('--upstream must be auto, nginx or node');
  return o;
}
