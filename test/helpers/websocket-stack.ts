/**
 * WebSocket test stack: a `ws` WebSocketServer on a real mTLS upstream (the run's upstream
 * certificate, the gateway's client certificate required and verified), the gateway in front of
 * it, and a `ws` client that presents a chosen certificate to the gateway. The upstream echoes
 * every message, records every upgrade request it saw and every TLS connection it accepted, so a
 * test can say that a refused upgrade never reached it.
 */
import https from 'node:https';
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { WebSocket, WebSocketServer } from 'ws';
import type { Issued } from '../../src/pki/dev-pki.js';
import { gatewayYaml, makeTestPki, startGateway, tempDir, writePkiFiles, type TestGateway, type TestPki } from './harness.js';

export interface SeenUpgrade {
  readonly url: string;
  readonly headers: IncomingHttpHeaders;
  readonly peerCN: string | undefined;
}

export interface WebSocketUpstream {
  readonly port: number;
  /** Upgrade requests that reached the upstream, in order. */
  readonly upgrades: SeenUpgrade[];
  /** Plain (non-upgrade) requests that reached the upstream. */
  readonly requests: IncomingMessage[];
  /** TLS connections the upstream accepted (each a completed mTLS handshake). */
  readonly connections: TLSSocket[];
  /** The server side of each open WebSocket. */
  readonly sockets: WebSocket[];
  readonly server: WebSocketServer;
  close(): Promise<void>;
}

/**
 * An echo upstream; subprotocols: the first offered one is chosen. Misbehaviour by path:
 * `/ws/refuse...` 403 instead of 101, `/ws/wrong-protocol` a 101 to h2c, `/ws/garbage` a
 * response that is not HTTP, `/ws/silent` no answer at all, `/ws/hangup` a 101 and then the
 * upstream drops the connection.
 */
export async function startWebSocketUpstream(pki: TestPki): Promise<WebSocketUpstream> {
  const upgrades: SeenUpgrade[] = [];
  const requests: IncomingMessage[] = [];
  const connections: TLSSocket[] = [];
  const sockets: WebSocket[] = [];
  const srv = https.createServer({ key: pki.upstreams['orders']!.keyPem, cert: pki.upstreams['orders']!.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true }, (req, res) => {
    requests.push(req);
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('plain');
  });
  srv.on('secureConnection', (s: TLSSocket) => connections.push(s));
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: 64 * 1024 * 1024,
    handleProtocols: (protocols) => [...protocols][0] ?? false,
    verifyClient: (info, done) => (info.req.url?.startsWith('/ws/refuse') ? done(false, 403, 'Forbidden', { 'content-type': 'application/json', 'x-upstream': 'refused' }) : done(true)),
  });
  srv.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => undefined);
    upgrades.push({ url: req.url ?? '', headers: req.headers, peerCN: (req.socket as TLSSocket).getPeerCertificate()?.subject?.CN as string | undefined });
    if (req.url === '/ws/wrong-protocol') return void socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
    if (req.url === '/ws/garbage') return void socket.end('SSH-2.0-OpenSSH_9.6\r\n\r\n');
    if (req.url === '/ws/silent') return;
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  wss.on('connection', (ws, req: IncomingMessage) => {
    sockets.push(ws);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', () => undefined);
    if (req.url === '/ws/hangup') ws.terminate();
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as AddressInfo).port,
    upgrades,
    requests,
    connections,
    sockets,
    server: wss,
    close: () =>
      new Promise<void>((resolve) => {
        for (const ws of wss.clients) ws.terminate();
        wss.close();
        srv.closeAllConnections();
        for (const c of connections) c.destroy();
        srv.close(() => resolve());
      }),
  };
}

export const WEBSOCKET_ROUTES_YAML = `
routes:
  - name: ws
    match: { pathPrefix: /ws }
    upstream: orders
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
  - name: ws-idle
    match: { pathPrefix: /idle }
    upstream: orders
    timeouts: { idle: 300ms }
    rewrite: { prefix: /ws/idle }
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
  - name: admin
    match: { pathPrefix: /admin }
    upstream: orders
    allow:
      - subject: { CN: ops-admin, OU: sre }
`;

export interface WebSocketStack {
  readonly pki: TestPki;
  readonly upstream: WebSocketUpstream;
  readonly gw: TestGateway;
  /** Opens a WebSocket through the gateway; resolves once open (rejects with the refusal). */
  connect(client: Issued | null, path: string, opts?: { protocols?: string[]; headers?: Record<string, string> }): Promise<WebSocket>;
  close(): Promise<void>;
}

export async function startWebSocketStack(opts: { routes?: string; crlYaml?: string; upstreamExtra?: string; extra?: string; upstream?: (port: number) => string } = {}): Promise<WebSocketStack> {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  await writePkiFiles(pki, dir);
  const upstream = await startWebSocketUpstream(pki);
  const gw = await startGateway({
    dir,
    yaml: gatewayYaml({
      upstreamPort: upstream.port,
      routes: opts.routes ?? WEBSOCKET_ROUTES_YAML,
      ...(opts.crlYaml ? { crlYaml: opts.crlYaml } : {}),
      ...(opts.upstreamExtra ? { upstreamExtra: opts.upstreamExtra } : {}),
      ...(opts.extra ? { extra: opts.extra } : {}),
      ...(opts.upstream ? { upstream: opts.upstream(upstream.port) } : {}),
    }),
  }).catch(async (err: unknown) => {
    await upstream.close();
    await cleanup();
    throw err;
  });
  const clients = new Set<WebSocket>();
  return {
    pki,
    upstream,
    gw,
    connect(client, path, o = {}) {
      const ws = new WebSocket(`wss://127.0.0.1:${gw.port}${path}`, o.protocols ?? [], {
        ca: pki.root.certPem,
        ...(client ? { cert: client.chainPem, key: client.keyPem } : {}),
        ...(o.headers ? { headers: o.headers } : {}),
        maxPayload: 64 * 1024 * 1024,
        handshakeTimeout: 10_000,
      });
      clients.add(ws);
      return new Promise((resolve, reject) => {
        ws.once('open', () => resolve(ws));
        ws.once('unexpected-response', (_req, res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') })));
        });
        ws.once('error', reject);
      });
    },
    async close() {
      for (const ws of clients) ws.terminate();
      await gw.close();
      await upstream.close();
      await cleanup();
    },
  };
}

/** Resolves with the close code once the WebSocket is closed. */
export function closed(ws: WebSocket): Promise<number> {
  return ws.readyState === WebSocket.CLOSED ? Promise.resolve(1006) : new Promise((resolve) => ws.once('close', (code) => resolve(code)));
}

/** The next message on the WebSocket. */
export function nextMessage(ws: WebSocket): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data: Buffer) => resolve(data));
    ws.once('close', () => reject(new Error('closed before a message')));
  });
}
