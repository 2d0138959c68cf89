/**
 * What the data plane knows about a connection under one snapshot: the authenticator's verdict
 * (once per connection), the per-request re-checks of validity and revocation, and the
 * per-identity context (XFCC and RFC 9440 values, child logger) memoized in the snapshot. This is
 * the "connection" input of admit().
 */
import type { TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { ErrorCode } from '../errors/registry.js';
import type { ConnectionVerdict } from '../identity/authenticate-connection.js';
import { Rfc9440Fields } from '../identity/rfc9440.js';
import { formatXfcc } from '../identity/xfcc.js';
import type { RevocationVerdict } from '../revocation/revocation-policy.js';
import type { ConnectionContext, RuntimeSnapshot } from '../runtime/snapshot.js';
import { identityLog } from './log-records.js';

export type AcceptedConnection = Extract<ConnectionVerdict, { ok: true }>;
export type RefusedConnection = Extract<ConnectionVerdict, { ok: false }>;

export type ConnectionFacts =
  | { readonly ok: false; readonly verdict: RefusedConnection }
  | {
      readonly ok: true;
      readonly verdict: AcceptedConnection;
      /** Null while the certificate is inside its validity window now; else the refusal code. */
      readonly expired: ErrorCode | null;
      /** The chain's revocation status against the index in force now. */
      readonly revocation: RevocationVerdict;
      readonly context: ConnectionContext;
    };

/**
 * The identity's context under this snapshot, created on its first request. Keyed by the identity
 * object, which the authenticator creates together with its certificate's DER and verified chain
 * (one identity, one chain), so the RFC 9440 values taken from this verdict hold for every
 * connection that shares the identity.
 */
export function contextFor(snapshot: RuntimeSnapshot, verdict: AcceptedConnection, logger: Logger): ConnectionContext {
  const identity = verdict.identity;
  let ctx = snapshot.contexts.get(identity);
  if (ctx === undefined) {
    ctx = {
      identity,
      xfcc: formatXfcc(identity, { by: snapshot.xfccBy }),
      rfc9440: new Rfc9440Fields(verdict.leafDer, verdict.links),
      log: logger.child({ client: identityLog(identity) }),
    };
    snapshot.contexts.set(identity, ctx);
  }
  return ctx;
}

/**
 * Asks the snapshot's authenticator about a request's connection. The verdict is cached per
 * connection; revocation is answered per request against the index in force (cached per
 * connection and index generation), so a session resumed after a revocation, or a keep-alive
 * connection opened before it, is caught.
 */
export function connectionFacts(snapshot: RuntimeSnapshot, socket: TLSSocket, logger: Logger): ConnectionFacts {
  const auth = snapshot.auth;
  const verdict = auth.verdict(socket);
  if (!verdict.ok) return { ok: false, verdict };
  const context = contextFor(snapshot, verdict, logger);
  return { ok: true, verdict, expired: auth.checkStillValid(verdict.identity), revocation: auth.revocation(socket, verdict), context };
}

/**
 * The OCSP lookup a request must wait for: set when the connection's certificate has no cached
 * answer yet (its first request, usually, when the lookup started at the handshake is still
 * running). The caller waits, then judges the request again; a request that has waited
 * MAX_REVOCATION_WAITS times is judged as it stands (refused: status unknown).
 */
export function revocationPending(connection: ConnectionFacts): Promise<void> | null {
  return connection.ok && !connection.revocation.ok && connection.revocation.pending !== undefined ? connection.revocation.pending : null;
}

/** A lookup can end with its answer already evicted by a full cache; twice is enough to tell. */
export const MAX_REVOCATION_WAITS = 2;
