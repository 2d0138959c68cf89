/**
 * WebSocket tunnels to one upstream target: the gateway's own mTLS connection, opened per tunnel
 * outside the target's pool (an upgraded connection never returns to a pool), with the pool's
 * verification: the upstream's TLS context, `servername`, the identity check (name, the gateway's
 * revocation verdict, pins) and no session resumption, so every tunnel's upstream is fully
 * verified. The upgrade request goes out only once the handshake passed; Node's HTTP client
 * parses the answer under its usual limits. A `101` is relayed to the client (its headers minus
 * hop-by-hop ones) and the two sockets are piped both ways with backpressure until either side
 * closes or no byte moves for the idle timeout; any other answer is relayed and the client's
 * connection closed. Frames are never looked at. Owns the tunnel's sockets and timers.
 */
import { request as httpRequest, STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { GatewayError } from '../errors/registry.js';
import { buildClientResponseHeaders } from './forward-headers.js';
import type { UpstreamTarget } from './upstream-target.js';
import { connectTarget } from './target-tls-connect.js';

export interface TunnelRequest {
  /** Path and query sent upstream. */
  readonly path: string;
  /** The complete upstream header list (flat name, value pairs), Host, Connection and Upgrade included. */
  readonly headers: readonly string[];
  readonly requestId: string;
  /** Until the upstream's answer head has arrived (after the TLS handshake). */
  readonly responseTimeout: number;
  /** An open tunnel is closed after this long without a byte either way. */
  readonly idleTimeout: number;
  /** Bytes the client sent after its upgrade head: written upstream only after the upstream's 101. */
  readonly clientHead: Buffer;
  /**
   * When the client's certificate expires (ms since the epoch): an open tunnel is cut then, as a
   * request on its connection would be refused from then on.
   */
  readonly notAfter: number;
}

/** setTimeout's longest delay (about 24.8 days); a later expiry re-arms the timer on the way. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Calls `fire` once the wall clock passes `at`; returns the canceller. */
function atTime(at: number, fire: () => void): () => void {
  let timer: NodeJS.Timeout;
  const arm = () => {
    const wait = at - Date.now();
    if (wait <= 0) return fire();
    timer = setTimeout(arm, Math.min(wait, MAX_TIMER_MS));
    timer.unref();
  };
  arm();
  return () => clearTimeout(timer);
}

export type ClosedBy = 'client' | 'upstream' | 'gateway';

export type TunnelOutcome =
  /** Nothing was written to the client. `sent`: the TLS handshake with the upstream had completed. */
  | { readonly kind: 'failed'; readonly error: unknown; readonly sent: boolean }
  /** The client left before the upstream answered; the upstream connection was dropped. */
  | { readonly kind: 'client-left' }
  /** The upstream refused the upgrade: its answer was relayed and the client's connection closed. */
  | { readonly kind: 'answered'; readonly status: number; readonly bytesOut: number; readonly cut: string | null }
  /** The tunnel was open and is now closed. Bytes are payload bytes after the 101, each way. */
  | { readonly kind: 'tunnel'; readonly bytesIn: number; readonly bytesOut: number; readonly closedBy: ClosedBy; readonly reason: string };

export interface Tunnel {
  /** Settles once both sockets are closed (or nothing was written to the client). */
  readonly result: Promise<TunnelOutcome>;
  /** Closes both sides now (shutdown); `reason` is what the access record says. */
  cut(reason: string): void;
}

/** Hop-by-hop in a 101 too; the gateway writes its own Connection and Upgrade. */
const HEAD_END = 'connection: Upgrade\r\nupgrade: websocket\r\n\r\n';

function responseHead(status: number, res: IncomingMessage, requestId: string, tail: string): string {
  const headers = buildClientResponseHeaders(
    res.rawHeaders.map((h) => Buffer.from(h, 'latin1')),
    requestId,
  );
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]!}: ${headers[i + 1]!}\r\n`;
  return head + tail;
}

function errorCode(err: unknown): string {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'error';
}

/**
 * Opens a tunnel from `client` (the upgraded client socket, paused, its head already judged) to
 * `target`. The client socket is only written to once the upstream has answered.
 */
export function openTunnel(client: Socket, target: UpstreamTarget, t: TunnelRequest, onOpen: () => void): Tunnel {
  const s = target.settings;
  const url = new URL(target.origin);
  let upstream: TLSSocket | null = null;
  let sent = false;
  let settled = false;
  let cutReason: string | null = null;
  let resolve!: (o: TunnelOutcome) => void;
  const result = new Promise<TunnelOutcome>((r) => (resolve = r));

  /** Ends the waiting for the answer; false when it had already ended. */
  const claim = (): boolean => {
    if (settled) return false;
    settled = true;
    clearTimeout(timer);
    client.off('close', onClientClose);
    return true;
  };
  const settle = (o: TunnelOutcome) => {
    if (claim()) resolve(o);
  };
  const fail = (error: unknown) => {
    if (settled) return;
    req.destroy();
    upstream?.destroy();
    settle({ kind: 'failed', error, sent });
  };
  const onClientClose = () => {
    if (settled) return;
    req.destroy();
    upstream?.destroy();
    settle({ kind: 'client-left' });
  };

  let timer = setTimeout(() => fail(new GatewayError('GW_ERR_UPSTREAM_TIMEOUT', { message: `connect to ${target.origin} timed out after ${s.connectTimeout}ms` })), s.connectTimeout);
  const req = httpRequest({
    method: 'GET',
    path: t.path,
    headers: t.headers as string[],
    setHost: false,
    createConnection: () => {
      upstream = connectTarget(url, s, ['http/1.1']);
      upstream.once('secureConnect', () => {
        sent = true;
        clearTimeout(timer);
        timer = setTimeout(() => fail(new GatewayError('GW_ERR_UPSTREAM_TIMEOUT', { message: `no answer to the upgrade from ${target.origin} within ${t.responseTimeout}ms` })), t.responseTimeout);
      });
      return upstream;
    },
  });
  req.on('error', fail);
  req.on('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
    // Node removed its own listeners: without this one an upstream reset would throw.
    socket.on('error', () => undefined);
    const protocol = res.headers.upgrade;
    if (typeof protocol !== 'string' || protocol.trim().toLowerCase() !== 'websocket') {
      socket.destroy();
      return fail(new GatewayError('GW_ERR_UPSTREAM_PROTOCOL', { message: `${target.origin} switched to ${JSON.stringify(protocol ?? null)} instead of websocket` }));
    }
    if (!claim()) return void socket.destroy();
    onOpen();
    client.write(responseHead(101, res, t.requestId, HEAD_END), 'latin1');
    if (head.length > 0) client.write(head);
    if (t.clientHead.length > 0) socket.write(t.clientHead);
    pipe(client, socket as TLSSocket, t, head.length, resolve, () => cutReason);
  });
  req.on('response', (res: IncomingMessage) => {
    if (!claim()) return void res.destroy();
    relayRefusal(client, res, res.socket as TLSSocket, s.idleTimeout, t.requestId, resolve);
  });
  client.once('close', onClientClose);
  req.end();

  return {
    result,
    cut(reason: string) {
      cutReason ??= reason;
      if (!settled) fail(new GatewayError('GW_ERR_SHUTTING_DOWN'));
      client.destroy();
      upstream?.destroy();
    },
  };
}

/**
 * The upstream refused the upgrade (any status but 101): its answer goes to the client as it is,
 * hop-by-hop headers removed, `Connection: close`; the body streams with backpressure and may not
 * pause longer than the upstream's idle timeout. The client's connection closes after it: it was
 * handed over by the HTTP server for the upgrade and cannot go back to it.
 */
function relayRefusal(client: Socket, res: IncomingMessage, upstream: TLSSocket, idleMs: number, requestId: string, resolve: (o: TunnelOutcome) => void): void {
  const status = res.statusCode ?? 502;
  let bytesOut = 0;
  let cut: string | null = null;
  client.on('error', (err) => {
    cut ??= errorCode(err);
    res.destroy();
  });
  res.on('error', (err) => {
    cut ??= errorCode(err);
    client.destroy();
  });
  upstream.setTimeout(idleMs, () => {
    cut ??= 'idle';
    res.destroy();
    client.destroy();
  });
  res.on('data', (c: Buffer) => (bytesOut += c.length));
  client.write(responseHead(status, res, requestId, 'connection: close\r\n\r\n'), 'latin1');
  // Ended and then destroyed once flushed: the client's half of the connection is not waited for.
  res.on('end', () => client.destroySoon());
  res.pipe(client, { end: false });
  client.once('close', () => {
    if (!res.complete) cut ??= 'client-closed';
    res.destroy();
    upstream.destroy();
    resolve({ kind: 'answered', status, bytesOut, cut });
  });
}

/**
 * Both directions, with backpressure (pipe pauses the reader while the writer's buffer is full,
 * so memory stays at the sockets' buffers whatever the message size). An end on one side is
 * passed on as an end (a WebSocket close handshake completes); a reset or error destroys both.
 * Idle: Node refreshes a socket's timeout on every read and write, and every byte of the tunnel
 * is read on one socket and written on the other, so each socket's timeout is the tunnel's.
 */
function pipe(
  client: Socket,
  upstream: TLSSocket,
  t: TunnelRequest,
  upstreamHead: number,
  resolve: (o: TunnelOutcome) => void,
  cutReason: () => string | null,
): void {
  let bytesIn = t.clientHead.length;
  let bytesOut = upstreamHead;
  let closedBy: ClosedBy | null = null;
  let reason = '';
  let open = 2;
  const first = (by: ClosedBy, why: string) => {
    if (closedBy !== null) return;
    closedBy = by;
    reason = why;
  };
  const idle = () => {
    first('gateway', 'idle');
    client.destroy();
    upstream.destroy();
  };
  const stopExpiry = atTime(t.notAfter, () => {
    first('gateway', 'certificate-expired');
    client.destroy();
    upstream.destroy();
  });
  const closed = () => {
    if (--open > 0) return;
    stopExpiry();
    first('gateway', cutReason() ?? 'connection-closed');
    resolve({ kind: 'tunnel', bytesIn, bytesOut, closedBy: closedBy!, reason });
  };
  client.on('data', (c: Buffer) => (bytesIn += c.length));
  upstream.on('data', (c: Buffer) => (bytesOut += c.length));
  client.on('end', () => first('client', 'end'));
  upstream.on('end', () => first('upstream', 'end'));
  client.on('error', (err) => {
    first('client', errorCode(err));
    upstream.destroy();
  });
  upstream.on('error', (err) => {
    first('upstream', errorCode(err));
    client.destroy();
  });
  client.setTimeout(t.idleTimeout, idle);
  upstream.setTimeout(t.idleTimeout, idle);
  // A side that closed without an end or an error was destroyed by the gateway (revocation, a
  // removed CA, the drain's deadline, shutdown): the other side goes too. After an end, the other
  // side was ended by the pipe and closes once its peer answers (or at the idle timeout).
  client.once('close', () => {
    if (closedBy === null) first('gateway', cutReason() ?? 'connection-closed');
    if (!upstream.writableEnded) upstream.destroy();
    closed();
  });
  upstream.once('close', () => {
    if (!client.writableEnded) client.destroy();
    closed();
  });
  upstream.pipe(client);
  client.pipe(upstream);
}
