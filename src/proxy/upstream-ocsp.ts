/**
 * Upstream OCSP (upstreams.<name>.tls.ocsp): the upstream's certificate judged by OCSP after the
 * handshake and before the connection carries a byte of a request. Every connection asks for a
 * stapled answer (`requestOCSP`); Node reports it, or its absence, with the socket's
 * 'OCSPResponse' event during the handshake, before 'secureConnect'.
 *
 * - A stapled answer is verified against the leaf's issuer (from upstreams.<name>.tls.ca, linked as
 *   upstream-verify.ts links chains for the CRLs) and used instead of a lookup. One that does not
 *   verify counts as "unavailable" (onUnavailable decides), as a failed lookup would.
 * - `requireStapled` refuses a connection without a staple, whatever the mode.
 * - No staple and mode prefer/require: the upstream's OcspStore decides (a cached answer, else a
 *   lookup at the certificate's AIA responder, awaited once).
 * - The verdict is the client side's (combined-revocation.ts combineLeaf): revoked and unknown
 *   refuse in every mode, unavailable follows onUnavailable, no responder refuses only `require`.
 *
 * A refusal is a GatewayError with the upstream revocation codes, so the data plane maps it like a
 * CRL or pin refusal (502, never forwarded). The connections are opened by
 * resuming-target-connect.ts, which asks judge() before handing a socket over (also on a resumed
 * session, with the chain remembered from its full handshake: a resumed handshake carries no
 * staple, so the store decides). No timers or sockets of its own: it observes sockets others open.
 */
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, PeerCertificate, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { GatewayError } from '../errors/registry.js';
import { combineLeaf, type OcspPolicy } from '../revocation/combined-revocation.js';
import { certIdFor } from '../revocation/ocsp-request.js';
import { verifyOcspResponse } from '../revocation/ocsp-response.js';
import { stateFromCheck, type OcspState, type OcspStore } from '../revocation/ocsp-store.js';
import type { ChainLink } from '../x509/chain-links.js';
import { ChainLinker } from '../x509/chain-links.js';

export interface UpstreamOcspSettings {
  /** The upstream's name, for messages. */
  readonly name: string;
  readonly store: OcspStore;
  readonly mode: 'off' | 'prefer' | 'require';
  readonly requireStapled: boolean;
  readonly onUnavailable: 'deny' | 'allow';
  /** upstreams.<name>.tls.ca: where the leaf's issuer is found. */
  readonly trust: readonly X509Certificate[];
  readonly now: () => number;
  /** Where an admission that failed open is logged; none: not logged. */
  readonly logger?: Logger | null | undefined;
}

/** Where a staple came from in verdicts and logs (an OcspState names its responder URL). */
const STAPLED = 'the stapled answer';

/** 'OCSPResponse' not seen (null: seen, no staple). */
type Staple = Buffer | null | undefined;

/** One upstream's OCSP check, shared by every connection of its targets. */
export class UpstreamOcspCheck {
  readonly #s: UpstreamOcspSettings;
  readonly #linker: ChainLinker;
  /** The policy combineLeaf applies; `requireStapled` alone judges the staple as `prefer` would. */
  readonly #policy: OcspPolicy;

  constructor(s: UpstreamOcspSettings) {
    this.#s = s;
    this.#linker = new ChainLinker(s.trust);
    this.#policy = { mode: s.mode === 'require' ? 'require' : 'prefer', onUnavailable: s.onUnavailable };
  }

  /** upstreams.<name>.tls.ocsp.requireStapled: every connection must carry a staple, which a resumed handshake never does. */
  get requiresStaple(): boolean {
    return this.#s.requireStapled;
  }

  /**
   * The refusal for a connection whose handshake completed (OpenSSL and checkServerIdentity
   * passed), or null when it may be used. Never rejects. `remembered`: a resumed session's chain as
   * verified in its full handshake (the socket reports none then, and no staple: staple is null).
   */
  async judge(socket: TLSSocket, staple: Staple, remembered?: DetailedPeerCertificate): Promise<GatewayError | null> {
    try {
      return await this.#judge(socket, staple, remembered);
    } catch (err) {
      return this.#refuse(false, `OCSP: the check failed: ${(err as Error).message}`);
    }
  }

  async #judge(socket: TLSSocket, staple: Staple, remembered: DetailedPeerCertificate | undefined): Promise<GatewayError | null> {
    const s = this.#s;
    if (staple === undefined) return this.#refuse(false, 'OCSP: the TLS layer did not report whether the upstream stapled an answer');
    const leaf = this.#leafOf(remembered === undefined ? (detailed) => socket.getPeerCertificate(detailed) : () => remembered);
    if (leaf === null || leaf.issuer === null) {
      return this.#refuse(false, `OCSP: the certificate chain could not be linked to the CA certificates in upstreams.${s.name}.tls.ca, so its OCSP answer cannot be checked`);
    }
    const issuer = leaf.issuer;
    let state: OcspState;
    if (staple !== null && staple.length > 0) {
      state = this.#stapled(leaf, issuer, staple);
    } else if (s.requireStapled) {
      return this.#refuse(false, `OCSP: the upstream stapled no answer and upstreams.${s.name}.tls.ocsp.requireStapled is true`);
    } else if (s.mode === 'off') {
      return null;
    } else {
      state = s.store.state(leaf.raw, issuer, leaf.serial, leaf.subject);
      // One wait for a lookup (its own timeout bounds it); still running after that is unavailable.
      if (state.kind === 'pending') {
        await state.done;
        state = s.store.state(leaf.raw, issuer, leaf.serial, leaf.subject);
        if (state.kind === 'pending') state = { kind: 'unavailable', reason: 'the lookup did not settle', url: '(lookup)', until: s.now() };
      }
      // While the connection lives its answer is refreshed before it expires; a refresh that turns
      // it bad renews the upstream's pools (ocsp-stores.ts onUpstreamChange).
      socket.once('close', s.store.hold(issuer, leaf.serial));
    }
    const verdict = combineLeaf(leaf, state, this.#policy, null);
    if (!verdict.ok) return this.#refuse(verdict.revoked, verdict.reason);
    if (verdict.failOpen !== null) {
      s.logger?.warn({ event: 'upstream-ocsp-fail-open', upstream: s.name, serial: leaf.serial, subject: leaf.subject, reason: verdict.failOpen }, 'upstream admitted without a current OCSP status');
    }
    return null;
  }

  /** A staple as an OcspState: an answer when it verifies, else unavailable with the reason. */
  #stapled(leaf: ChainLink, issuer: X509Certificate, der: Buffer): OcspState {
    const now = this.#s.now();
    return stateFromCheck(verifyOcspResponse(der, { certId: certIdFor(leaf.raw, issuer), issuer, now, nonce: null }), STAPLED, now, now);
  }

  /** The leaf with its issuer: from the trust bundle when it holds every issuer, else as the upstream sent its chain. */
  #leafOf(peer: (detailed: boolean) => PeerCertificate | undefined): ChainLink | null {
    const raw = peer(false)?.raw;
    if (!raw) return null;
    const chain = this.#linker.bundleCompletes(raw)
      ? this.#linker.fromBundle(new X509Certificate(raw))
      : this.#linker.fromPeer(peer(true) as DetailedPeerCertificate);
    return chain?.links[0] ?? null;
  }

  #refuse(revoked: boolean, reason: string): GatewayError {
    return new GatewayError(revoked ? 'GW_ERR_UPSTREAM_CERT_REVOKED' : 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN', {
      message: `upstream ${this.#s.name}: ${reason}`,
    });
  }
}

/** Records the socket's 'OCSPResponse' (emitted once per handshake, before 'secureConnect'). */
export function captureStaple(socket: TLSSocket): () => Staple {
  let staple: Staple;
  socket.once('OCSPResponse', (res: Buffer | null) => {
    staple = res;
  });
  return () => staple;
}
