/**
 * Fleet test harness: several real mTLS upstreams on loopback (each its own server, all carrying
 * the `orders.internal` certificate, as the pods of one Service do) behind one gateway whose
 * `orders` upstream lists them as `targets`. Handlers can be swapped while the test runs, so a
 * target can start failing, reset, or recover.
 */
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import type { Issued } from '../../src/pki/dev-pki.js';
import type { DnsLookup } from '../../src/proxy/dns-discovery.js';
import { echoHandler, gatewayYaml, makeTestPki, request, startGateway, startUpstream, tempDir, writePkiFiles, type TestPki, type TestUpstream, type UpstreamHandler } from './harness.js';

export const FLEET_ROUTES_YAML = `
routes:
  - name: orders
    match: { pathPrefix: /orders }
    upstream: orders
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
      - subject: { CN: ops-admin, OU: sre }
`;

export interface FleetTarget extends TestUpstream {
  /** Replaces how this target answers from now on. */
  handler: UpstreamHandler;
  readonly origin: string;
}

/** The gateway config for a fleet: `upstream` holds the `orders` upstream's keys other than `tls`. */
export function fleetYaml(opts: { upstream: string; routes?: string; extra?: string }): string {
  return gatewayYaml({ upstreamPort: 0, upstream: opts.upstream, routes: opts.routes ?? FLEET_ROUTES_YAML, crl: false, admin: 'admin: { enabled: false }', ...(opts.extra !== undefined ? { extra: opts.extra } : {}) });
}

export function targetsLine(targets: readonly { origin: string }[]): string {
  return `targets: [${targets.map((t) => t.origin).join(', ')}]`;
}

/** Starts one swappable mTLS target on loopback. */
export async function startTarget(pki: TestPki, opts: { host?: string; port?: number; handler?: UpstreamHandler } = {}): Promise<FleetTarget> {
  let handler: UpstreamHandler = opts.handler ?? echoHandler;
  const u = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem, handler: (req, res, seen) => handler(req, res, seen), ...(opts.host ? { host: opts.host } : {}), ...(opts.port ? { port: opts.port } : {}) });
  const host = opts.host ?? '127.0.0.1';
  const origin = `https://${net.isIPv6(host) ? `[${host}]` : host}:${u.port}`;
  // An accessor, not a copied value: setting `handler` must reach the server's closure.
  return Object.defineProperties(u, {
    origin: { value: origin, enumerable: true },
    handler: {
      get: () => handler,
      set: (h: UpstreamHandler) => {
        handler = h;
      },
      enumerable: true,
    },
  }) as FleetTarget;
}

/** A loopback port that refuses connections (a server was there and is gone). */
export async function refusedPort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  const port = (srv.address() as AddressInfo).port;
  await new Promise<void>((resolve) => srv.close(() => resolve()));
  return port;
}

/** Answers with `status` and a small body. */
export function statusHandler(status: number): UpstreamHandler {
  return (req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(status, { 'content-type': 'text/plain' }).end(`status ${status}`));
  };
}

/** Destroys the connection as soon as the request head arrived: the gateway sees a reset. */
export const resetHandler: UpstreamHandler = (req) => {
  req.socket.destroy();
};

export interface Fleet {
  pki: TestPki;
  dir: string;
  targets: FleetTarget[];
  gw: Awaited<ReturnType<typeof startGateway>>;
  send: (client: Issued | null, o?: Parameters<typeof request>[3]) => ReturnType<typeof request>;
  billing: Issued;
  close(): Promise<void>;
}

/**
 * `count` targets and a gateway in front. `upstream` builds the upstream's keys from the targets
 * (default: `targets: [...]`).
 */
export async function startFleet(opts: { count: number; upstream?: (targets: FleetTarget[]) => string; routes?: string; extra?: string; lookup?: DnsLookup; pki?: TestPki; targets?: FleetTarget[] }): Promise<Fleet> {
  const pki = opts.pki ?? (await makeTestPki());
  const { dir, cleanup } = await tempDir('mtls-gw-fleet-');
  await writePkiFiles(pki, dir);
  const targets = opts.targets ?? [];
  while (targets.length < opts.count) targets.push(await startTarget(pki));
  const upstream = opts.upstream?.(targets) ?? targetsLine(targets);
  const closeTargets = () => Promise.all(targets.map((t) => t.close().catch(() => undefined)));
  const gw = await startGateway({ dir, yaml: fleetYaml({ upstream, ...(opts.routes ? { routes: opts.routes } : {}), ...(opts.extra ? { extra: opts.extra } : {}) }), ...(opts.lookup ? { lookup: opts.lookup } : {}) }).catch(async (err: unknown) => {
    await closeTargets();
    await cleanup();
    throw err;
  });
  return {
    pki,
    dir,
    targets,
    gw,
    billing: pki.clients['billing']!,
    send: (client, o = {}) => request(gw.port, client, pki.root.certPem, o),
    async close() {
      await gw.close();
      await closeTargets();
      await cleanup();
    },
  };
}

/** How many requests each target saw. */
export function hits(targets: readonly FleetTarget[]): number[] {
  return targets.map((t) => t.seen.length);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
