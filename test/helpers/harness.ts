/**
 * Test harness: a PKI generated for this run, a real mTLS upstream on loopback, the gateway built
 * by buildGateway on port 0, and a client that speaks real TLS with a chosen certificate. Nothing
 * certificate-like is committed; every file lives in a temp dir that is removed at teardown.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { loadConfig, parseConfigText } from '../../src/config/load-config.js';
import type { GatewayConfig } from '../../src/config/schema.js';
import { buildGateway, type Gateway } from '../../src/http/build-gateway.js';
import type { DnsLookup } from '../../src/proxy/dns-discovery.js';
import { createDevPki, issueLeaf, createRootCa, type DevPki, type Issued } from '../../src/pki/dev-pki.js';

export interface TestPki extends DevPki {
  expired: Issued;
  notYetValid: Issued;
  serverOnly: Issued;
  rogueClient: Issued;
  /** A CA certificate with its key, presented as if it were a client certificate. */
  caAsClient: Issued;
}

const DAY = 86_400_000;

export async function makeTestPki(now = new Date()): Promise<TestPki> {
  const pki = await createDevPki({ now });
  const rogueRoot = await createRootCa({ name: 'rogue-root', subject: { CN: 'Rogue Root CA', O: 'Evil' }, now });
  const [expired, notYetValid, serverOnly, rogueClient] = await Promise.all([
    issueLeaf(pki.intermediate, {
      name: 'expired',
      subject: { CN: 'billing', OU: 'payments', O: 'Example' },
      uris: ['spiffe://example.org/ns/default/sa/billing'],
      usage: 'client',
      notBefore: new Date(now.getTime() - 10 * DAY),
      notAfter: new Date(now.getTime() - DAY),
    }),
    issueLeaf(pki.intermediate, {
      name: 'not-yet-valid',
      subject: { CN: 'billing', OU: 'payments', O: 'Example' },
      uris: ['spiffe://example.org/ns/default/sa/billing'],
      usage: 'client',
      notBefore: new Date(now.getTime() + DAY),
      notAfter: new Date(now.getTime() + 10 * DAY),
    }),
    issueLeaf(pki.intermediate, {
      name: 'server-only',
      subject: { CN: 'billing', OU: 'payments', O: 'Example' },
      uris: ['spiffe://example.org/ns/default/sa/billing'],
      usage: 'server',
    }),
    issueLeaf(rogueRoot, {
      name: 'rogue-client',
      subject: { CN: 'billing', OU: 'payments', O: 'Example' },
      uris: ['spiffe://example.org/ns/default/sa/billing'],
      usage: 'client',
    }),
  ]);
  return { ...pki, expired, notYetValid, serverOnly, rogueClient, caAsClient: pki.intermediate };
}

export async function tempDir(prefix = 'mtls-gw-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  peerCN: string | undefined;
  bodyBytes: number;
}

export interface TestUpstream {
  port: number;
  seen: SeenRequest[];
  /** Connections the upstream's TLS layer dropped (a refused client certificate is a bare close), with when. */
  tlsErrors: string[];
  close(): Promise<void>;
}

export type UpstreamHandler = (req: IncomingMessage, res: ServerResponse, seen: SeenRequest) => void;

/** Default upstream behaviour: reads the whole body, then answers JSON describing the request. */
export const echoHandler: UpstreamHandler = (req, res, seen) => {
  req.on('data', (c: Buffer) => (seen.bodyBytes += c.length));
  req.on('end', () => {
    const body = JSON.stringify({ method: seen.method, url: seen.url, headers: seen.headers, peerCN: seen.peerCN, bodyBytes: seen.bodyBytes });
    res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
    res.end(body);
  });
};

/** A real mTLS upstream that requires and verifies the gateway's client certificate. */
export async function startUpstream(opts: { server: Issued; ca: string; handler?: UpstreamHandler; crl?: string[]; host?: string; port?: number }): Promise<TestUpstream> {
  const seen: SeenRequest[] = [];
  const handler = opts.handler ?? echoHandler;
  const srv = https.createServer(
    { key: opts.server.keyPem, cert: opts.server.chainPem, ca: opts.ca, requestCert: true, rejectUnauthorized: true, ...(opts.crl ? { crl: opts.crl } : {}) },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      const s: SeenRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, peerCN: peer?.subject?.CN as string | undefined, bodyBytes: 0 };
      seen.push(s);
      handler(req, res, s);
    },
  );
  const tlsErrors: string[] = [];
  srv.on('tlsClientError', (err: NodeJS.ErrnoException) => tlsErrors.push(`${new Date().toISOString()} ${err.code ?? ''} ${err.message}`));
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', resolve);
  });
  return {
    port: (srv.address() as AddressInfo).port,
    seen,
    tlsErrors,
    close: () =>
      new Promise<void>((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  };
}

export interface LogRecord {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export interface TestGateway {
  port: number;
  gateway: Gateway;
  logs: LogRecord[];
  dir: string;
  close(): Promise<void>;
}

/** Writes the PKI files the gateway config refers to and returns their paths (relative names). */
export async function writePkiFiles(pki: TestPki, dir: string): Promise<void> {
  const files: Record<string, string> = {
    'gateway.crt': pki.gatewayServer.chainPem,
    'gateway.key': pki.gatewayServer.keyPem,
    'gateway-client.crt': pki.gatewayClient.chainPem,
    'gateway-client.key': pki.gatewayClient.keyPem,
    'ca-bundle.pem': pki.caBundlePem,
    'root.crl.pem': pki.rootCrl.pem,
    'intermediate.crl.pem': pki.intermediateCrl.pem,
  };
  await Promise.all(Object.entries(files).map(([name, text]) => writeFile(path.join(dir, name), text, { mode: 0o600 })));
}

export const DEFAULT_ROUTES_YAML = `
routes:
  - name: orders
    match: { pathPrefix: /orders, methods: [GET, POST, PUT] }
    upstream: orders
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
      - subject: { CN: ops-admin, OU: sre }
  - name: admin
    match: { pathPrefix: /admin }
    upstream: orders
    allow:
      - subject: { CN: ops-admin, OU: sre }
`;

/**
 * The gateway config of the tests. `upstream`: the `orders` upstream's keys other than `tls`, one
 * per line without indentation, in place of `url: https://127.0.0.1:<upstreamPort>` (a fleet's
 * `targets`, `discovery`, `balance`...).
 */
export function gatewayYaml(opts: { upstreamPort: number; upstream?: string; routes?: string; crl?: boolean; crlYaml?: string; upstreamExtra?: string; servername?: string; extra?: string; admin?: string }): string {
  const upstream = opts.upstream ?? `url: https://127.0.0.1:${opts.upstreamPort}`;
  return `
listen: { host: 127.0.0.1, port: 0 }
tls:
  cert: ./gateway.crt
  key: ./gateway.key
  clientCA: ./ca-bundle.pem
${opts.crlYaml ?? (opts.crl === false ? '' : '  crl: [./root.crl.pem, ./intermediate.crl.pem]')}
upstreams:
  orders:
${upstream
  .trim()
  .split('\n')
  .map((l) => `    ${l}`)
  .join('\n')}
    tls:
      cert: ./gateway-client.crt
      key: ./gateway-client.key
      ca: ./ca-bundle.pem
      servername: ${opts.servername ?? 'orders.internal'}
${opts.upstreamExtra ?? ''}
${opts.routes ?? DEFAULT_ROUTES_YAML}
log: { level: debug }
${opts.admin ?? 'admin: { listen: { host: 127.0.0.1, port: 0 } }'}
${opts.extra ?? ''}
`;
}

/**
 * GW_TEST_ENGINE=lean (or node) sets server.engine of every gateway the harness starts, whatever
 * its YAML says: the suite's upstream tests run against the gateway's own HTTP/1.1 client.
 */
function withTestEngine(config: GatewayConfig): GatewayConfig {
  const engine = process.env['GW_TEST_ENGINE'];
  if (engine !== 'lean' && engine !== 'node') return config;
  return { ...config, server: { ...config.server, engine } };
}

/**
 * The engines a test that compares them runs under: both, or only the one GW_TEST_ENGINE forces
 * (every gateway the harness starts would be that one anyway).
 */
export function enginesUnderTest(): Array<'node' | 'lean'> {
  const engine = process.env['GW_TEST_ENGINE'];
  return engine === 'lean' || engine === 'node' ? [engine] : ['node', 'lean'];
}

/** Builds and starts the gateway from YAML text; the YAML's relative paths resolve against dir. */
export async function startGateway(opts: { dir: string; yaml: string; now?: () => number; watch?: boolean; file?: string; lookup?: DnsLookup }): Promise<TestGateway> {
  const logs: LogRecord[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogRecord) });
  // The YAML is written to dir/gateway.yaml, and a reload reads that file again (as the CLI does),
  // so a test changes the configuration by rewriting it.
  const file = opts.file ?? path.join(opts.dir, 'gateway.yaml');
  await writeFile(file, opts.yaml);
  const config = withTestEngine(parseConfigText(opts.yaml, file));
  const gateway = await buildGateway({
    config,
    logger,
    loadConfig: async () => withTestEngine((await loadConfig(file)).config),
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.lookup ? { lookup: opts.lookup } : {}),
    // The file watch the CLI runs: a change of the config or a file it names triggers a reload.
    ...(opts.watch ? { watchFile: file } : {}),
  });
  const address = await gateway.listen();
  return { port: address.port, gateway, logs, dir: opts.dir, close: () => gateway.close() };
}

export interface ClientResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json: unknown;
}

/**
 * One request on a fresh TLS connection with the given client certificate (or none). The path is
 * sent exactly as given, so encoding tricks reach the gateway unchanged.
 */
export function request(
  port: number,
  client: Issued | null,
  ca: string,
  opts: { method?: string; path?: string; headers?: Record<string, string>; body?: string | Buffer; servername?: string; agent?: https.Agent } = {},
): Promise<ClientResponse & { socket: TLSSocket }> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        servername: opts.servername ?? 'localhost',
        method: opts.method ?? 'GET',
        path: opts.path ?? '/',
        headers: opts.headers ?? {},
        ...(opts.agent ? { agent: opts.agent } : { agent: false, ca, ...(client ? { cert: client.chainPem, key: client.keyPem } : {}) }),
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          let json: unknown = undefined;
          try {
            json = JSON.parse(body);
          } catch {
            /* not JSON */
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json, socket });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error('client timeout')));
    req.end(opts.body);
  });
}

/** The full stack for one test file: PKI, upstream, gateway; close() tears it all down. */
export async function startStack(opts: { routes?: string; upstreamHandler?: UpstreamHandler; extra?: string; upstreamExtra?: string; crl?: boolean; crlYaml?: string; pki?: TestPki; beforeStart?: (dir: string) => Promise<void> } = {}) {
  const pki = opts.pki ?? (await makeTestPki());
  const { dir, cleanup } = await tempDir();
  await writePkiFiles(pki, dir);
  await opts.beforeStart?.(dir);
  const upstream = await startUpstream({ server: pki.upstreams['orders']!, ca: pki.caBundlePem, ...(opts.upstreamHandler ? { handler: opts.upstreamHandler } : {}) });
  const gw = await startGateway({
    dir,
    yaml: gatewayYaml({ upstreamPort: upstream.port, ...(opts.routes ? { routes: opts.routes } : {}), ...(opts.extra ? { extra: opts.extra } : {}), ...(opts.upstreamExtra ? { upstreamExtra: opts.upstreamExtra } : {}), ...(opts.crl === false ? { crl: false } : {}), ...(opts.crlYaml ? { crlYaml: opts.crlYaml } : {}) }),
  }).catch(async (err: unknown) => {
    await upstream.close();
    await cleanup();
    throw err;
  });
  const send = (client: Issued | null, o: Parameters<typeof request>[3] = {}) => request(gw.port, client, pki.root.certPem, o);
  return {
    pki,
    dir,
    upstream,
    gw,
    send,
    async close() {
      await gw.close();
      await upstream.close();
      await cleanup();
    },
  };
}
