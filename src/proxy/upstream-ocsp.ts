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
 * CRL or pin refusal (502, never forwarded). The connections are undici's (withUpstreamOcsp wraps
 * its connector) and the gateway's own (holdUntilOcspVerdict, for target-tls-connect.ts). No
 * timers or sockets of its own: it observes sockets others open.
 */
import { X509Certificate } from 'node:crypto';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { buildConnector } from 'undici';
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

  /**
   * The refusal for a connection whose handshake completed (OpenSSL and checkServerIdentity
   * passed), or null when it may be used. Never rejects.
   */
  async judge(socket: TLSSocket, staple: Staple): Promise<GatewayError | null> {
    try {
      return await this.#judge(socket, staple);
    } catch (err) {
      return this.#refuse(false, `OCSP: the check failed: ${(err as Error).message}`);
    }
  }

  async #judge(socket: TLSSocket, staple: Staple): Promise<GatewayError | null> {
    const s = this.#s;
    if (staple === undefined) return this.#refuse(false, 'OCSP: the TLS layer did not report whether the upstream stapled an answer');
    const leaf = this.#leafOf(socket);
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
  #leafOf(socket: TLSSocket): ChainLink | null {
    const raw = socket.getPeerCertificate(false)?.raw;
    if (!raw) return null;
    const chain = this.#linker.bundleCompletes(raw)
      ? this.#linker.fromBundle(new X509Certificate(raw))
      : this.#linker.fromPeer(socket.getPeerCertificate(true) as DetailedPeerCertificate);
    return chain?.links[0] ?? null;
  }

  #refuse(revoked: boolean, reason: string): GatewayError {
    return new GatewayError(revoked ? 'GW_ERR_UPSTREAM_CERT_REVOKED' : 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN', {
      message: `upstream ${this.#s.name}: ${reason}`,
    });
  }
}

/** Records the socket's 'OCSPResponse' (emitted once per handshake, before 'secureConnect'). */
function captureStaple(socket: TLSSocket): () => Staple {
  let staple: Staple;
  socket.once('OCSPResponse', (res: Buffer | null) => {
    staple = res;
  });
  return () => staple;
}

/**
 * undici's connector with the OCSP check between the handshake and the hand-over: the socket is
 * given to undici only after the check passed; a refusal destroys it and fails the connection with
 * the GatewayError. The connector must be built with `requestOCSP: true`.
 */
export function withUpstreamOcsp(connect: buildConnector.connector, check: UpstreamOcspCheck): buildConnector.connector {
  return (options, callback) => {
    let staple: (() => Staple) | null = null;
    // undici's connector returns the socket it opened (its type says void), synchronously, before
    // any handshake byte: the only moment the staple's event can still be observed.
    const opened: unknown = (connect as (...a: Parameters<buildConnector.connector>) => unknown)(options, (err, socket) => {
      if (err !== null) return callback(err, null);
      const tls = socket as TLSSocket;
      void check.judge(tls, staple === null ? undefined : staple()).then((refusal) => {
        if (refusal === null) return callback(null, tls);
        tls.destroy();
        callback(refusal, null);
      });
    });
    if (opened !== null && typeof opened === 'object' && typeof (opened as TLSSocket).once === 'function') staple = captureStaple(opened as TLSSocket);
    return opened as undefined;
  };
}

/** The TLS socket's native stream, as node:net and node:http2 drive it. */
type NativeStream = { reading: boolean; readStop(): number; readStart(): number };

function nativeStream(socket: TLSSocket): NativeStream | null {
  return (socket as unknown as { _handle?: NativeStream | null })._handle ?? null;
}

/**
 * For a socket the gateway opens itself (target-tls-connect.ts), whose users act on 'secureConnect'
 * (node:http2 starts its session then; node:http's request was written before and waits in the
 * socket): writes are held (cork) and 'secureConnect' is delivered only after the check passed.
 * A refusal destroys the socket with the GatewayError, which its users see as a connection error.
 *
 * Reading stops too while the check runs (it may wait for a lookup): node:http2 takes the native
 * stream over when its session starts, and bytes the upstream sent meanwhile (its SETTINGS) would
 * otherwise sit in the JS stream's buffer, where the session never looks (it checks that buffer
 * only when it is created), and the session would fail with a protocol error.
 */
export function holdUntilOcspVerdict(socket: TLSSocket, check: UpstreamOcspCheck): TLSSocket {
  const staple = captureStaple(socket);
  socket.cork();
  const original = socket.emit;
  const emit = original as (this: TLSSocket, event: string | symbol, ...args: unknown[]) => boolean;
  socket.emit = function holdSecureConnect(this: TLSSocket, event: string | symbol, ...args: unknown[]): boolean {
    if (event !== 'secureConnect') return emit.apply(this, [event, ...args]);
    socket.emit = original;
    const stream = nativeStream(socket);
    const wasReading = stream?.reading === true;
    if (stream !== null && wasReading) {
      stream.reading = false;
      stream.readStop();
    }
    void check.judge(socket, staple()).then((refusal) => {
      if (socket.destroyed) return;
      if (refusal !== null) return void socket.destroy(refusal);
      emit.apply(socket, ['secureConnect', ...args]);
      if (stream !== null && wasReading && !stream.reading && !socket.destroyed) {
        stream.reading = true;
        stream.readStart();
      }
      socket.uncork();
    });
    return true;
  } as typeof socket.emit;
  return socket;
}
