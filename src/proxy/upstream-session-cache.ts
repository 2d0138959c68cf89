/**
 * The TLS sessions one upstream connector may offer to resume, each with what the gateway verified
 * in the full handshake that created it. Node skips checkServerIdentity on a resumed session and
 * the client socket then reports no peer certificate (docs/architecture.md, "TLS facts"), so this
 * remembered chain is the only thing a resumed connection can be judged on again: its name, the
 * pins, the revocation verdict in force now and its validity window (resuming-target-connect.ts).
 *
 * Pure: no sockets, no timers, no clock of its own (the caller passes `now`). Bounded: a few
 * sessions per connector, the newest offered first; a session is only ever what Node's 'session'
 * event gave, and one that is too large is not kept.
 */
import type { DetailedPeerCertificate } from 'node:tls';

/** Sessions kept per connector: a TLS 1.3 full handshake yields two tickets by default (Node's server). */
export const MAX_SESSIONS = 8;
/** A serialized session holds the ticket and the peer's certificate; far larger is not a session worth keeping. */
export const MAX_SESSION_BYTES = 32 * 1024;
/** Certificates walked up a remembered chain (leaf, intermediates, anchor). */
const MAX_CHAIN = 16;

/** What one full handshake verified, shared by every session that handshake produced. */
export interface VerifiedPeer {
  /** The name the chain was verified for (upstreams.<name>.tls.servername). */
  readonly servername: string;
  /** The chain as Node gave it to checkServerIdentity in that handshake. */
  readonly cert: DetailedPeerCertificate;
  /** The validity window every certificate of that chain shares (latest notBefore, earliest notAfter), ms. */
  readonly notBefore: number;
  readonly notAfter: number;
}

/**
 * The verified peer for a chain, or null when a certificate's validity dates cannot be read (such a
 * session is never kept: it could not be judged again).
 */
export function verifiedPeer(servername: string, cert: DetailedPeerCertificate): VerifiedPeer | null {
  let notBefore = -Infinity;
  let notAfter = Infinity;
  let cur: DetailedPeerCertificate | undefined = cert;
  for (let i = 0; i < MAX_CHAIN && cur !== undefined && cur.raw !== undefined; i++) {
    const from = Date.parse(cur.valid_from);
    const to = Date.parse(cur.valid_to);
    if (Number.isNaN(from) || Number.isNaN(to)) return null;
    notBefore = Math.max(notBefore, from);
    notAfter = Math.min(notAfter, to);
    // Node ends the chain with the anchor pointing at itself.
    if (cur.issuerCertificate === cur) break;
    cur = cur.issuerCertificate;
  }
  return Number.isFinite(notBefore) && Number.isFinite(notAfter) ? { servername, cert, notBefore, notAfter } : null;
}

/** Why the remembered chain is not valid at `now` (a certificate expired since, or not yet valid), or null. */
export function outsideValidity(peer: VerifiedPeer, now: number): string | null {
  if (now > peer.notAfter) return `a certificate of the chain expired at ${new Date(peer.notAfter).toISOString()}`;
  if (now < peer.notBefore) return `a certificate of the chain is not valid before ${new Date(peer.notBefore).toISOString()}`;
  return null;
}

interface Entry {
  readonly session: Buffer;
  readonly peer: VerifiedPeer;
}

export class UpstreamSessionCache {
  readonly #max: number;
  /** By session bytes (a one-byte string of them), oldest first. */
  readonly #entries = new Map<string, Entry>();

  constructor(max = MAX_SESSIONS) {
    this.#max = Math.max(1, max);
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Keeps a session Node gave for a connection whose chain `peer` was verified (and is still valid). */
  remember(session: Buffer, peer: VerifiedPeer): void {
    if (session.length === 0 || session.length > MAX_SESSION_BYTES) return;
    const key = session.toString('latin1');
    this.#entries.delete(key);
    this.#entries.set(key, { session, peer });
    for (const oldest of this.#entries.keys()) {
      if (this.#entries.size <= this.#max) break;
      this.#entries.delete(oldest);
    }
  }

  /**
   * The newest session for `servername` whose chain is valid at `now`; those expired are dropped on
   * the way. It stays cached: servers accept a ticket more than once, and one the server declines
   * is forgotten by the caller when the handshake turns out full.
   */
  offer(servername: string, now: number): Entry | undefined {
    const all = [...this.#entries.values()];
    for (let i = all.length - 1; i >= 0; i--) {
      const e = all[i]!;
      if (outsideValidity(e.peer, now) !== null) {
        this.forgetPeer(e.peer);
        continue;
      }
      if (e.peer.servername === servername) return e;
    }
    return undefined;
  }

  /** What was verified for this session, if it is cached. */
  peerOf(session: Buffer): VerifiedPeer | undefined {
    return this.#entries.get(session.toString('latin1'))?.peer;
  }

  forget(session: Buffer): void {
    this.#entries.delete(session.toString('latin1'));
  }

  /** Drops every session of one verified chain (a full handshake's tickets share it). */
  forgetPeer(peer: VerifiedPeer): void {
    for (const [key, e] of this.#entries) if (e.peer === peer) this.#entries.delete(key);
  }
}
