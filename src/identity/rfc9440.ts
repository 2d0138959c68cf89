/**
 * RFC 9440 client-certificate header values: `Client-Cert` (the client's certificate) and
 * `Client-Cert-Chain` (the CA certificates the gateway verified it through), each certificate an
 * RFC 8941 Byte Sequence of its DER (`:<base64>:`).
 *
 * The chain is the one the gateway verified, not the one the client sent: the certificate that
 * issued the leaf first, each next one issuing the previous (the TLS order, RFC 8446 4.4.2), the
 * trust anchor left out (RFC 9440 2.3 allows it: the upstream must hold the anchor anyway, or it
 * could not judge the chain). A leaf issued straight by the anchor has no Client-Cert-Chain.
 *
 * Values are computed on first use and kept: a certificate's headers are base64 of a few KB, paid
 * once per identity and snapshot rather than per request, and never when no route sends them.
 */
import type { ChainLink } from '../x509/chain-links.js';

/** An RFC 8941 Byte Sequence (section 3.3.5): standard base64 with padding, between colons. */
export function byteSequence(der: Uint8Array): string {
  return `:${Buffer.from(der.buffer, der.byteOffset, der.byteLength).toString('base64')}:`;
}

/**
 * The Client-Cert-Chain value of a verified chain, or null when there is nothing to send: the leaf
 * was issued by the trust anchor itself, or an issuer is missing from the links (a chain the
 * gateway cannot show whole is not sent in part).
 *
 * `links` are as the authenticator returns them (src/x509/chain-links.ts): the leaf first, each
 * certificate below the anchor with the CA that issued it, so the last link's issuer is the anchor
 * and the intermediates are the issuers of every link but the last.
 */
export function clientCertChainValue(links: readonly ChainLink[]): string | null {
  if (links.length < 2) return null;
  const items: string[] = [];
  for (let i = 0; i < links.length - 1; i++) {
    const issuer = links[i]!.issuer;
    if (issuer === null) return null;
    items.push(byteSequence(issuer.raw));
  }
  return items.join(', ');
}

/** The RFC 9440 values of one verified connection's certificate and chain, computed on first use. */
export class Rfc9440Fields {
  readonly #leafDer: Uint8Array;
  readonly #links: readonly ChainLink[];
  #clientCert: string | undefined;
  #clientCertChain: string | null | undefined;

  /** `leafDer`: the client's certificate as it was presented; `links`: its verified chain. */
  constructor(leafDer: Uint8Array, links: readonly ChainLink[]) {
    this.#leafDer = leafDer;
    this.#links = links;
  }

  /** `Client-Cert`: the client's certificate. */
  get clientCert(): string {
    return (this.#clientCert ??= byteSequence(this.#leafDer));
  }

  /** `Client-Cert-Chain`, or null when the header is to be left out (see clientCertChainValue). */
  get clientCertChain(): string | null {
    if (this.#clientCertChain === undefined) this.#clientCertChain = clientCertChainValue(this.#links);
    return this.#clientCertChain;
  }
}
