/**
 * Opens the gateway's TLS connections to one upstream target (sockets and the connect timer), for
 * its undici Pool (`connect` as a function), its HTTP/2 session and its WebSocket tunnels, and
 * resumes their TLS sessions without letting a resumed connection skip a check.
 *
 * A full handshake is verified by OpenSSL and the upstream's identity check (upstream-verify.ts:
 * servername, the gateway's revocation verdict, the pins), then OCSP when on (upstream-ocsp.ts).
 * Node skips checkServerIdentity on a resumed session and the socket then reports no peer
 * certificate, so every session Node hands out ('session') is remembered with the chain the full
 * handshake verified (upstream-session-cache.ts), and a resumed connection is judged again on that
 * chain before anyone may use it: the same identity check against the revocation verdict in force
 * now, the validity window, and OCSP from the store (a resumed handshake carries no staple). A
 * refusal destroys the socket with the error the full handshake would give and forgets the
 * chain's sessions.
 *
 * One connector per pool generation (UpstreamTarget builds it with the pool): a new secure context
 * (reload) or a renew after a CRL or OCSP change starts with no sessions, so nothing verified under
 * the old material is offered again. Sessions stay with one target: a ticket is only ever offered
 * to the origin that issued it.
 */
import { connect as tlsConnect, type DetailedPeerCertificate, type PeerCertificate, type TLSSocket } from 'node:tls';
import { errors, type buildConnector } from 'undici';
import { GatewayError } from '../errors/registry.js';
import { captureStaple } from './upstream-ocsp.js';
import { outsideValidity, UpstreamSessionCache, verifiedPeer, type VerifiedPeer } from './upstream-session-cache.js';
import type { TargetPoolSettings } from './upstream-target.js';

/** A connection's verdict, asked once its handshake completed: null admits it. */
type Verdict = () => Promise<Error | null>;

/** undici's TCP keep-alive default for its own connector. */
const KEEPALIVE_INITIAL_DELAY = 60_000;

export class TargetConnector {
  readonly #s: TargetPoolSettings;
  /** null: every connection is a full handshake (tls.sessionResumption false, or a staple is required on each). */
  readonly #cache: UpstreamSessionCache | null;
  readonly #now: () => number;

  /** `cache`: where the sessions are kept (default: a new one of its own; ignored when resumption is off). */
  constructor(s: TargetPoolSettings, cache: UpstreamSessionCache = new UpstreamSessionCache()) {
    this.#s = s;
    this.#cache = s.sessionResumption === true && s.ocsp?.requiresStaple !== true ? cache : null;
    this.#now = s.now ?? Date.now;
  }

  /** Sessions held now (tests and status). */
  get sessions(): number {
    return this.#cache?.size ?? 0;
  }

  /**
   * undici's connector: the socket is handed to the Pool only once its verdict admitted it; a
   * refusal destroys it and fails the connection with the refusal.
   */
  readonly undici: buildConnector.connector = ({ hostname, port }, callback) => {
    const s = this.#s;
    const { socket, verdict } = this.#open(hostname, Number(port) || 443, ['http/1.1']);
    socket.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY).setNoDelay(true);
    let done = false;
    const finish = (err: Error | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      if (err === null) return callback(null, socket);
      socket.destroy();
      callback(err, null);
    };
    // timeouts.connect bounds TCP and TLS, as undici's own connector does; an OCSP lookup after
    // the handshake is bounded by tls.ocsp.timeout.
    const timer = setTimeout(() => finish(new errors.ConnectTimeoutError(`Connect Timeout Error (attempted address: ${hostname}:${port}, timeout: ${s.connectTimeout}ms)`)), s.connectTimeout);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      void verdict().then(finish);
    });
    socket.on('error', (err) => finish(err));
    return socket as never;
  };

  /**
   * A socket for node:http2 or node:http, which act on 'secureConnect': it is delivered only after
   * the verdict admitted the connection (writes corked, reads paused meanwhile). A refusal destroys
   * the socket with it, which its users see as a connection error. Their own timers bound it.
   */
  open(origin: URL, alpn: readonly string[]): TLSSocket {
    const { socket, verdict } = this.#open(origin.hostname.replace(/^\[|\]$/g, ''), Number(origin.port || 443), alpn);
    // Nothing to judge after the handshake: no session is offered and OCSP is off.
    if (this.#cache === null && !this.#s.ocsp) return socket;
    return holdSecureConnect(socket, verdict);
  }

  #open(host: string, port: number, alpn: readonly string[]): { socket: TLSSocket; verdict: Verdict } {
    const s = this.#s;
    const cache = this.#cache;
    const offered = cache?.offer(s.servername, this.#now());
    let verified: VerifiedPeer | null = null;
    const socket = tlsConnect({
      host,
      port,
      servername: s.servername,
      secureContext: s.secureContext,
      rejectUnauthorized: true,
      ALPNProtocols: [...alpn],
      // Called on full handshakes only; what passes here is what a later resumption is judged on.
      checkServerIdentity: (name: string, cert: PeerCertificate) => {
        const err = s.checkServerIdentity(name, cert);
        if (err === undefined && cache !== null) verified = verifiedPeer(s.servername, cert as DetailedPeerCertificate);
        return err;
      },
      ...(offered !== undefined ? { session: offered.session } : {}),
      ...(s.ocsp ? { requestOCSP: true } : {}),
    });
    const staple = s.ocsp ? captureStaple(socket) : null;
    // TLS 1.3 tickets arrive after 'secureConnect', possibly while the verdict is still pending:
    // they are kept only once the connection was admitted, with the chain it was admitted on.
    let admitted: VerifiedPeer | null | undefined;
    const early: Buffer[] = [];
    if (cache !== null) {
      socket.on('session', (session: Buffer) => {
        if (admitted === undefined) early.push(session);
        else if (admitted !== null) cache.remember(session, admitted);
      });
    }
    const verdict: Verdict = async () => {
      const resumed = socket.isSessionReused();
      // A session the upstream declined is worth nothing to it any more.
      if (!resumed && offered !== undefined) cache?.forget(offered.session);
      const peer = resumed ? (offered?.peer ?? null) : verified;
      const refusal = resumed ? await this.#recheck(socket, peer) : s.ocsp ? await s.ocsp.judge(socket, staple!()) : null;
      if (refusal !== null) {
        admitted = null;
        if (peer !== null) cache?.forgetPeer(peer);
        return refusal;
      }
      admitted = peer;
      for (const session of early.splice(0)) if (peer !== null) cache?.remember(session, peer);
      return null;
    };
    return { socket, verdict };
  }

  /** The checks a resumed connection skipped, on the chain its full handshake verified, as of now. */
  async #recheck(socket: TLSSocket, peer: VerifiedPeer | null): Promise<Error | null> {
    const s = this.#s;
    if (peer === null) {
      return new GatewayError('GW_ERR_UPSTREAM_TLS', { message: `upstream ${s.servername}: the TLS session was resumed without a session the gateway offered` });
    }
    const expired = outsideValidity(peer, this.#now());
    if (expired !== null) {
      return new GatewayError('GW_ERR_UPSTREAM_CERT_EXPIRED', { message: `upstream ${s.servername}: resumed TLS session refused: ${expired}` });
    }
    let err: Error | undefined;
    try {
      err = s.checkServerIdentity(peer.servername, peer.cert);
    } catch (e) {
      err = new GatewayError('GW_ERR_UPSTREAM_TLS', { message: `upstream ${s.servername}: the resumed session's certificate could not be checked: ${(e as Error).message}` });
    }
    if (err !== undefined) return err;
    return s.ocsp ? s.ocsp.judge(socket, null, peer.cert) : null;
  }
}

/** The TLS socket's native stream, as node:net and node:http2 drive it. */
type NativeStream = { reading: boolean; readStop(): number; readStart(): number };

function nativeStream(socket: TLSSocket): NativeStream | null {
  return (socket as unknown as { _handle?: NativeStream | null })._handle ?? null;
}

/**
 * Holds a socket's 'secureConnect' until `verdict` admitted it: writes are held (cork), and reading
 * stops too while it runs (it may wait for an OCSP lookup): node:http2 takes the native stream over
 * when its session starts, and bytes the upstream sent meanwhile (its SETTINGS) would otherwise sit
 * in the JS stream's buffer, where the session never looks (it checks that buffer only when it is
 * created), and the session would fail with a protocol error.
 */
function holdSecureConnect(socket: TLSSocket, verdict: Verdict): TLSSocket {
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
    void verdict().then((refusal) => {
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
