/**
 * Identity: how many certificates a client presented in its TLS handshake, leaf included, counting
 * every certificate it sent (also ones that chain to nothing), for the tls.maxChainLength check.
 *
 * What Node lets a server see (measured on Node 20.20 / OpenSSL 3.0 and Node 24.21 / OpenSSL 3.5,
 * TLS 1.2 and 1.3 alike):
 * - getPeerCertificate(true) follows issuer links only, so certificates that do not chain never
 *   show; on Node 20 it costs 0.3-0.5 ms for leaf + intermediate.
 * - The first getPeerX509Certificate() call on a server socket returns the leaf with
 *   `issuerCertificate` linking through every certificate the client sent, in the order sent, and
 *   empties OpenSSL's peer chain while doing it (later calls and getPeerCertificate(true) see the
 *   leaf only). It copies each certificate, which is slow on OpenSSL 3.0: on Node 20 about
 *   0.25 ms for leaf + intermediate, 0.05 ms for a leaf alone, and about 140 ms for 300 extra.
 * - Node 24.21 makes that first call itself in onServerSocketSecure and drops the result
 *   (nodejs/node#65579), so from 'secureConnection' on, nothing beyond the leaf is visible.
 *   `recordPresentedChainLengths()` below is the opt-in way to keep the count there; it costs
 *   nothing measurable, because Node has already paid for the copies.
 * - Nothing in Node exposes the Certificate message itself, OpenSSL's max_cert_list or its
 *   verify depth, and by the time any JavaScript runs OpenSSL has already parsed every certificate:
 *   a refusal based on this count cannot give the handshake's CPU back. Under OpenSSL's default
 *   100 KB limit a client can still make the server parse a few hundred small certificates.
 */
import { TLSSocket } from 'node:tls';
import type { X509Certificate } from 'node:crypto';

/** Where recorded counts live: on the patched prototype itself, so no module state is needed. */
const RECORDED = Symbol.for('mtls-gateway.presentedChainLengths');

/** A bound on the walk; OpenSSL's 100 KB max_cert_list already keeps real lists to a few hundred. */
const WALK_LIMIT = 100_000;

type Recorded = WeakMap<object, number>;

/** What the TLS handle's method returns: Node's native certificate object, not X509Certificate. */
interface NativeCertificate {
  getIssuerCert?: () => NativeCertificate | undefined;
}

function countLinks(leaf: X509Certificate | undefined): number | null {
  if (leaf === undefined) return null;
  let n = 0;
  for (let c: X509Certificate | undefined = leaf; c !== undefined && n < WALK_LIMIT; c = c.issuerCertificate) n++;
  return n;
}

/** The same walk over native objects; null when they do not look as expected (nothing recorded). */
function countNativeLinks(leaf: unknown): number | null {
  if (typeof leaf !== 'object' || leaf === null || typeof (leaf as NativeCertificate).getIssuerCert !== 'function') return null;
  let n = 0;
  for (let c: NativeCertificate | undefined = leaf as NativeCertificate; c !== undefined && n < WALK_LIMIT; c = c.getIssuerCert?.()) n++;
  return n;
}

function handleOf(socket: TLSSocket): object | null {
  const handle = (socket as unknown as { _handle?: unknown })._handle;
  return typeof handle === 'object' && handle !== null ? handle : null;
}

/**
 * Certificates the client presented on this connection, leaf included; null when it presented
 * none. Exact on runtimes where this is the first getPeerX509Certificate() call on the socket
 * (Node 20) or where recordPresentedChainLengths() is installed; otherwise (Node 24.21 without it)
 * it sees the leaf only and returns 1. Call it once per connection, after any
 * getPeerCertificate(true) the caller needs, because on Node 20 it empties that chain.
 */
export function presentedChainLength(socket: TLSSocket): number | null {
  const handle = handleOf(socket);
  if (handle !== null) {
    const recorded = (Object.getPrototypeOf(handle) as { [RECORDED]?: Recorded } | null)?.[RECORDED]?.get(handle);
    if (recorded !== undefined) return recorded;
  }
  return countLinks(socket.getPeerX509Certificate());
}

/**
 * The client's leaf, when taking it costs nothing the caller still needs: the first
 * getPeerX509Certificate() call on this connection has already been made (Node 24.21 makes it in
 * onServerSocketSecure, and recordPresentedChainLengths() saw it), so the chain is already gone
 * and another call copies the leaf alone. Measured on Node 24.21 under handshake load: about
 * 15 µs, against about 50 µs for getPeerCertificate(false), which builds a JS object with three
 * fingerprints. Undefined when that first call has not been made (Node 20): there it would copy
 * every certificate the client sent (about 175 µs for leaf and intermediate) and empty the chain
 * getPeerCertificate(true) reports, so the caller keeps to getPeerCertificate(false).
 */
export function leafOnceChainTaken(socket: TLSSocket): X509Certificate | undefined {
  const handle = handleOf(socket);
  if (handle === null) return undefined;
  const recorded = (Object.getPrototypeOf(handle) as { [RECORDED]?: Recorded } | null)?.[RECORDED]?.has(handle);
  return recorded === true ? socket.getPeerX509Certificate() : undefined;
}

/**
 * Opt-in, process-wide: wraps the TLS handle's native getPeerX509Certificate so that the first call
 * on each connection (Node 24.21 makes it itself, before 'secureConnection') records how many
 * certificates the peer presented, for presentedChainLength(). The call's result is returned
 * unchanged and only a number is kept per live handle (a WeakMap, so nothing outlives the socket).
 * It relies on Node internals (the TLSWrap prototype, reached through a throwaway socket's
 * `_handle`); when they are not there it changes nothing and returns false. Idempotent. Costs a
 * walk over objects Node has already built, nothing per request. It affects every TLS socket in
 * the process, clients included, but only by observing a call Node or the caller already makes.
 */
export function recordPresentedChainLengths(): boolean {
  // A TLSSocket without a transport gets a TLSWrap over an unopened TCP handle: no descriptor, no
  // handshake; destroyed at once.
  const probe = new TLSSocket(null as unknown as ConstructorParameters<typeof TLSSocket>[0]);
  const handle = handleOf(probe);
  probe.destroy();
  if (handle === null) return false;
  const proto = Object.getPrototypeOf(handle) as { [RECORDED]?: Recorded; getPeerX509Certificate?: (...args: unknown[]) => unknown } | null;
  if (proto === null || typeof proto.getPeerX509Certificate !== 'function') return false;
  if (proto[RECORDED] !== undefined) return true;
  const native = proto.getPeerX509Certificate;
  const recorded: Recorded = new WeakMap();
  Object.defineProperty(proto, RECORDED, { value: recorded });
  proto.getPeerX509Certificate = function recordingGetPeerX509Certificate(this: object, ...args: unknown[]) {
    const cert = native.apply(this, args);
    if (!recorded.has(this)) {
      const n = countNativeLinks(cert);
      if (n !== null) recorded.set(this, n);
    }
    return cert;
  };
  return true;
}
