/**
 * An mTLS HTTP/2 origin on loopback with the `orders.internal` upstream certificate, requiring and
 * verifying the gateway's client certificate, as a `protocol: http2` upstream target. `onStream`
 * answers every stream but the health check's (`/healthz`, answered 200 here).
 */
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { TestPki } from './harness.js';

export interface H2Origin {
  /** `https://127.0.0.1:PORT` */
  readonly origin: string;
  close(): Promise<void>;
}

export async function startH2Origin(pki: TestPki, onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => void): Promise<H2Origin> {
  const server = pki.upstreams['orders']!;
  const srv = http2.createSecureServer({ key: server.keyPem, cert: server.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2'] });
  const sessions = new Set<ServerHttp2Session>();
  srv.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  srv.on('stream', (stream: ServerHttp2Stream, headers) => {
    stream.on('error', () => undefined);
    if (String(headers[':path']) === '/healthz') return stream.respond({ ':status': 200 }, { endStream: true });
    onStream(stream, headers);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    origin: `https://127.0.0.1:${(srv.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        srv.close(() => resolve());
      }),
  };
}
