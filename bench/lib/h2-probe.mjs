// One HTTP/2 request over a fresh mTLS session (node:http2), for readiness probes and the functional
// checks of the h2 and grpc scenarios: a GET, or a unary gRPC-shaped call (POST, content-type
// application/grpc, te: trailers, one 5-byte-prefixed message). Resolves { status, grpcStatus,
// body, alpn, error }; grpcStatus is read from the trailers, or from the headers of a Trailers-Only
// answer (how a proxy reports its own refusals to a gRPC client).
import { readFileSync } from 'node:fs';
import { connect } from 'node:http2';

export const GRPC_PATH = '/bench.Echo/Unary';

/** A gRPC message: compressed flag 0, 32-bit big-endian length, the bytes. */
export function grpcFrame(payload) {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

export function h2Probe({ port, path = '/', grpc = false, message = grpcFrame(Buffer.from('probe')), cert, key, ca, servername = 'localhost', headers = {}, timeoutMs = 5000 }) {
  return new Promise((resolve) => {
    let settled = false;
    const result = { status: 0, grpcStatus: null, body: Buffer.alloc(0), alpn: null, error: null };
    const session = connect(`https://127.0.0.1:${port}`, { cert, key, ca, servername });
    const finish = (error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) result.error = error;
      session.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => finish(new Error('timeout')), timeoutMs);
    session.on('error', finish);
    session.on('connect', () => (result.alpn = session.alpnProtocol ?? null));
    const req = session.request(
      grpc ? { ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers } : { ':method': 'GET', ':path': path, ...headers },
      grpc ? {} : { endStream: true },
    );
    const chunks = [];
    req.on('response', (h) => {
      result.status = Number(h[':status']);
      if (h['grpc-status'] !== undefined) result.grpcStatus = String(h['grpc-status']);
    });
    req.on('trailers', (t) => {
      if (t['grpc-status'] !== undefined) result.grpcStatus = String(t['grpc-status']);
    });
    req.on('data', (c) => chunks.push(c));
    req.on('error', finish);
    req.on('close', () => {
      result.body = Buffer.concat(chunks);
      finish(null);
    });
    if (grpc) req.end(message);
  });
}

/** h2Probe with the PKI's files read in: pki.<who>Cert / <who>Key, or no client certificate ('none'). */
export function h2ProbeAs(pki, who, opts) {
  const as = who === 'none' ? {} : { cert: readFileSync(pki[`${who}Cert`]), key: readFileSync(pki[`${who}Key`]) };
  return h2Probe({ ca: readFileSync(pki.caBundle), ...as, ...opts });
}
