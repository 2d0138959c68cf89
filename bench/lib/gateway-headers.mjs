// The header bytes the gateway adds at its defaults, for the reference targets that send them
// (floor-proxy.mjs with FLOOR_GATEWAY_HEADERS=1, lean-floor.mjs with LEAN_GATEWAY_WORK=1): the
// XFCC value as src/identity/xfcc.ts formats it (By, Hash, Subject, URI and DNS SANs), made once
// per connection from the peer certificate, and the client's fields of the gateway's access record.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** XFCC's By=: the URI SAN of the server's own certificate, as the gateway writes it. */
export function xfccBy(serverCertFile) {
  return (new X509Certificate(readFileSync(serverCertFile)).subjectAltName ?? '').split(', ').find((s) => s.startsWith('URI:'))?.slice(4);
}

/** What the gateway derives from a connection's peer certificate: its XFCC value and the record's client fields. */
export function peerFacts(socket, by) {
  const c = socket.getPeerCertificate();
  const sans = (c.subjectaltname ?? '').split(', ').filter(Boolean);
  const dn = (o) => Object.entries(o ?? {}).reverse().map(([k, x]) => `${k}=${x}`).join(',');
  const subject = dn(c.subject);
  const fingerprint = c.fingerprint256.replaceAll(':', '').toLowerCase();
  const uris = sans.filter((s) => s.startsWith('URI:')).map((s) => s.slice(4));
  const xfcc = [...(by !== undefined ? [`By=${by}`] : []), `Hash=${fingerprint}`, `Subject="${subject}"`, ...uris.map((u) => `URI=${u}`),
    ...sans.filter((s) => s.startsWith('DNS:')).map((s) => `DNS=${s.slice(4)}`)].join(';');
  return { xfcc, client: { subject, issuer: dn(c.issuer), serial: c.serialNumber, fingerprint, spiffe: uris.find((u) => u.startsWith('spiffe://')) } };
}
