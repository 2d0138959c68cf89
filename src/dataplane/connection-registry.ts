/**
 * The registry of live client connections. Every TLS connection is registered when its handshake
 * completes and leaves when it closes. After the client CRLs change, and after every snapshot swap,
 * `rejudge()` judges each live connection again under the snapshot in force and closes those that
 * it no longer admits: a chain now revoked (or whose revocation status can no longer be
 * established), or, after a reload changed tls.clientCA, a chain that no longer links to the new
 * bundle. Unaffected connections and their in-flight requests carry on untouched.
 */
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { RuntimeSnapshot } from '../runtime/snapshot.js';
import type { GatewayMetrics } from '../telemetry/metrics.js';
import { revocationCode, revocationLog } from './log-records.js';

export class ConnectionRegistry {
  readonly #live = new Set<TLSSocket>();
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

  add(socket: TLSSocket): void {
    this.#live.add(socket);
    socket.once('close', () => this.#live.delete(socket));
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
        socket.destroy();
        continue;
      }
      const r = auth.revocation(socket, v);
      if (r.ok) continue;
      this.#logger.warn(
        { event: 'client-revoked', code: revocationCode(r), when: 'live-connection', peer: { address: socket.remoteAddress, port: socket.remotePort }, ...revocationLog(r) },
        'closing a live connection after a CRL update',
      );
      this.#metrics?.revokedConnectionClosed();
      socket.destroy();
    }
  }
}
