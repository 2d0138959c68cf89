/**
 * The registry of live client connections. Every TLS connection is registered when its handshake
 * completes and leaves when it closes. After the client CRLs change, and after every snapshot swap,
 * `rejudge()` judges each live connection again under the snapshot in force and closes those whose
 * chain is now revoked (or whose revocation status can no longer be established). Unaffected
 * connections and their in-flight requests carry on untouched.
 */
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { RuntimeSnapshot } from '../runtime/snapshot.js';
import { revocationCode, revocationLog } from './log-records.js';

export class ConnectionRegistry {
  readonly #live = new Set<TLSSocket>();
  readonly #logger: Logger;

  constructor(logger: Logger) {
    this.#logger = logger;
  }

  get size(): number {
    return this.#live.size;
  }

  add(socket: TLSSocket): void {
    this.#live.add(socket);
    socket.once('close', () => this.#live.delete(socket));
  }

  rejudge(snapshot: RuntimeSnapshot): void {
    const auth = snapshot.auth;
    for (const socket of this.#live) {
      // Every registered connection was judged at its handshake; under a new authenticator this
      // computes the verdict afresh. Connections already refused answer 401 to every request.
      const v = auth.verdict(socket);
      if (!v.ok) continue;
      const r = auth.revocation(socket, v);
      if (r.ok) continue;
      this.#logger.warn(
        { event: 'client-revoked', code: revocationCode(r), when: 'live-connection', peer: { address: socket.remoteAddress, port: socket.remotePort }, ...revocationLog(r) },
        'closing a live connection after a CRL update',
      );
      socket.destroy();
    }
  }
}
