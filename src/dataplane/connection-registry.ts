/**
 * The registry of live client connections. Every TLS connection is registered when its handshake
 * completes and leaves when it closes. After the client CRLs change, and after every snapshot swap,
 * `rejudge()` judges each live connection again under the snapshot in force and closes those that
 * it no longer admits: a chain now revoked (or whose revocation status can no longer be
 * established), or, after a reload changed tls.clientCA, a chain that no longer links to the new
 * bundle. Unaffected connections and their in-flight requests carry on untouched. An HTTP/2
 * connection is closed with GOAWAY (src/dataplane/http2-sessions.ts), an HTTP/1.1 one destroyed.
 */
import type { ServerHttp2Session } from 'node:http2';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { RuntimeSnapshot } from '../runtime/snapshot.js';
import type { GatewayMetrics } from '../telemetry/metrics.js';
import { closeSessionGracefully, cutSession } from './http2-sessions.js';
import { revocationCode, revocationLog } from './log-records.js';

export class ConnectionRegistry {
  readonly #live = new Set<TLSSocket>();
  /**
   * Every accepted TCP connection until it closes, its TLS handshake done or not: what a drain
   * that timed out cuts. A connection still in its handshake is not in `#live`, and Node's
   * server.close() waits for it (up to tls.handshakeTimeout) like for any other.
   */
  readonly #transports = new Set<Socket>();
  readonly #sessions = new WeakMap<TLSSocket, ServerHttp2Session>();
  readonly #logger: Logger;
  readonly #metrics: GatewayMetrics | null;

  constructor(logger: Logger, metrics: GatewayMetrics | null = null) {
    this.#logger = logger;
    this.#metrics = metrics;
  }

  get size(): number {
    return this.#live.size;
  }

  /** The live connections (a copy). */
  sockets(): TLSSocket[] {
    return [...this.#live];
  }

  /** An accepted TCP connection (the server's 'connection' event), before its TLS handshake. */
  addTransport(socket: Socket): void {
    this.#transports.add(socket);
    socket.once('close', () => this.#transports.delete(socket));
  }

  /** Every accepted TCP connection still open, handshaking or not (a copy). */
  transports(): Socket[] {
    return [...this.#transports];
  }

  add(socket: TLSSocket): void {
    this.#live.add(socket);
    socket.once('close', () => this.#live.delete(socket));
  }

  /** The HTTP/2 session on a connection that negotiated h2. */
  attachSession(socket: TLSSocket, session: ServerHttp2Session): void {
    this.#sessions.set(socket, session);
  }

  sessionOf(socket: TLSSocket): ServerHttp2Session | undefined {
    return this.#sessions.get(socket);
  }

  /** GOAWAY to every HTTP/2 connection: no new streams, the ones in flight finish. */
  closeSessionsGracefully(): void {
    for (const socket of this.#live) {
      const session = this.#sessions.get(socket);
      if (session !== undefined) closeSessionGracefully(session);
    }
  }

  /** Closes a connection the gateway no longer admits: GOAWAY for HTTP/2, at once either way. */
  #cut(socket: TLSSocket): void {
    const session = this.#sessions.get(socket);
    // The session sends its GOAWAY and then destroys the socket itself.
    if (session !== undefined) cutSession(session);
    else socket.destroy();
  }

  /**
   * Judges every live connection under `snapshot`. `previous` is the snapshot it replaced, when
   * this follows a swap: a connection that `previous` admitted and `snapshot` refuses (its CA left
   * the bundle) is closed; one that was already refused keeps answering 401 until it closes.
   */
  rejudge(snapshot: RuntimeSnapshot, previous?: RuntimeSnapshot): void {
    const auth = snapshot.auth;
    const before = previous !== undefined && previous.auth !== auth ? previous.auth : null;
    for (const socket of this.#live) {
      const v = auth.verdict(socket);
      if (!v.ok) {
        // Under a new authenticator: close if the old one had admitted this connection.
        if (before === null || socket.destroyed) continue;
        const old = before.peek(socket) ?? before.verdict(socket);
        if (!old.ok) continue;
        this.#logger.warn(
          { event: 'client-rejected', code: v.code, reason: v.reason, when: 'reload', peer: { address: socket.remoteAddress, port: socket.remotePort, subject: v.peerSubject, serial: v.peerSerial } },
          'closing a live connection the reloaded client CA bundle no longer admits',
        );
        this.#metrics?.clientCertRejected(v.code);
        this.#cut(socket);
        continue;
      }
      const r = auth.revocation(socket, v);
      // A lookup still running refuses nothing yet: the connection's next request waits for it.
      if (r.ok || r.pending !== undefined) continue;
      this.#logger.warn(
        { event: 'client-revoked', code: revocationCode(r), when: 'live-connection', peer: { address: socket.remoteAddress, port: socket.remotePort }, ...revocationLog(r) },
        'closing a live connection after a revocation update (CRL or OCSP)',
      );
      this.#metrics?.revokedConnectionClosed();
      this.#cut(socket);
    }
  }
}
