/**
 * A small mTLS service for the demo and docker-compose: it requires a client certificate issued
 * by the dev CA (in practice only the gateway's upstream-client certificate is ever presented),
 * checks it against the CRLs, and answers every request with JSON naming itself and the caller
 * the gateway vouched for in X-Forwarded-Client-Cert.
 */
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { parseXfcc } from '../identity/xfcc.js';

export interface DemoUpstream {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

export interface DemoUpstreamOptions {
  /** Service name; its certificate is DIR/upstream-NAME.crt and .key. */
  readonly name: string;
  readonly certsDir: string;
  readonly host: string;
  /** 0 picks a free port. */
  readonly port: number;
}

/** The caller as the gateway described it: the SPIFFE ID when there is one, else the subject. */
export function callerFromXfcc(header: string | undefined): string | null {
  if (header === undefined) return null;
  try {
    const elements = parseXfcc(header);
    const last = elements[elements.length - 1];
    if (last === undefined) return null;
    const spiffe = (last['URI'] ?? []).find((u) => u.startsWith('spiffe://'));
    return spiffe ?? last['Subject']?.[0] ?? null;
  } catch {
    return null;
  }
}

async function readOptional(file: string): Promise<string | null> {
  return readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return null;
    throw err;
  });
}

export async function startDemoUpstream(opts: DemoUpstreamOptions): Promise<DemoUpstream> {
  const file = (f: string) => path.join(opts.certsDir, f);
  const [cert, key, ca] = await Promise.all([
    readFile(file(`upstream-${opts.name}.crt`), 'utf8'),
    readFile(file(`upstream-${opts.name}.key`), 'utf8'),
    readFile(file('ca-bundle.pem'), 'utf8'),
  ]);
  // OpenSSL needs a CRL from every CA in the chain once any CRL is loaded.
  const crls = (await Promise.all([readOptional(file('root.crl.pem')), readOptional(file('intermediate.crl.pem'))])).filter((c): c is string => c !== null);
  const server = https.createServer(
    { cert, key, ca, requestCert: true, rejectUnauthorized: true, ...(crls.length === 2 ? { crl: crls } : {}) },
    (req, res) => {
      const peer = (req.socket as TLSSocket).getPeerCertificate();
      const xfcc = req.headers['x-forwarded-client-cert'];
      const body = {
        service: opts.name,
        method: req.method,
        path: req.url,
        caller: callerFromXfcc(Array.isArray(xfcc) ? xfcc.join(',') : xfcc),
        connectedAs: (peer.subject as unknown as Record<string, string> | undefined)?.['CN'] ?? null,
        requestId: req.headers['x-request-id'] ?? null,
      };
      // The body is drained so keep-alive connections from the gateway stay usable.
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body) + '\n');
      });
    },
  );
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return {
    name: opts.name,
    host: opts.host,
    port: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
