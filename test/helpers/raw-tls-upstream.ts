/**
 * An mTLS upstream on 127.0.0.1 that hands each connection's raw socket to the test, which answers
 * with whatever bytes it means to (hostile, broken, split): the gateway's client certificate is
 * required and verified, as by a real upstream. close() destroys every connection still open.
 */
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';

export interface RawTlsUpstream {
  readonly port: number;
  close(): Promise<void>;
}

export async function startRawTlsUpstream(pem: { key: string; cert: string; ca: string }, onSocket: (sock: tls.TLSSocket) => void): Promise<RawTlsUpstream> {
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ key: pem.key, cert: pem.cert, ca: pem.ca, requestCert: true, rejectUnauthorized: true }, (sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    onSocket(sock);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}
