// The authenticator takes the client's leaf from getPeerX509Certificate() only where that call
// changes nothing the gateway still needs (leafOnceChainTaken(), src/identity/presented-chain.ts):
// once the first such call on the connection has been made, as Node 24.21 makes it itself before
// 'secureConnection'. Where it has not (Node 20), the first call would copy every certificate
// the client sent and empty the chain getPeerCertificate(true) reports, which the authenticator
// still needs for chains the trust bundle cannot complete. So, on every runtime: whatever
// leafOnceChainTaken() returns, the chain getPeerCertificate(true) reports is the same before and
// after, the presented-chain count is unchanged, and a leaf it returns is the client's.
//
// Real TLS over 127.0.0.1 with certificates generated in this run.
import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import tls, { type DetailedPeerCertificate, type TLSSocket } from 'node:tls';
import t from 'tap';
import { leafOnceChainTaken, presentedChainLength, recordPresentedChainLengths } from '../../src/identity/presented-chain.js';
import { createIntermediateCa, createRootCa, issueLeaf } from '../../src/pki/dev-pki.js';

function chainDepth(cert: DetailedPeerCertificate): number {
  let n = 0;
  for (let c = cert; c?.raw !== undefined && n < 10; c = c.issuerCertificate) {
    n++;
    if (c.issuerCertificate === c || c.issuerCertificate?.fingerprint256 === c.fingerprint256) break;
  }
  return n;
}

t.setTimeout(30_000);

t.test('the leaf is taken from the X509 API only once the chain is gone anyway', async (t) => {
  const root = await createRootCa({ subject: { CN: 'Leaf Test Root' } });
  const inter = await createIntermediateCa(root, { subject: { CN: 'Leaf Test Intermediate' } });
  const client = await issueLeaf(inter, { subject: { CN: 'billing' }, usage: 'client' });
  const server = await issueLeaf(inter, { subject: { CN: 'localhost' }, usage: 'server', dns: ['localhost'], ips: ['127.0.0.1'] });

  for (const recorder of [false, true]) {
    if (recorder) t.equal(recordPresentedChainLengths(), true, 'recorder installed');
    const seen = await new Promise<{ before: number; after: number; leafFp: string | null; summaryFp: string; countBefore: number | null }>((resolve, reject) => {
      const srv = tls.createServer({ cert: server.certPem + inter.certPem, key: server.keyPem, ca: root.certPem, requestCert: true, rejectUnauthorized: true }, (socket: TLSSocket) => {
        try {
          const summaryFp = socket.getPeerCertificate(false).fingerprint256;
          const before = chainDepth(socket.getPeerCertificate(true) as DetailedPeerCertificate);
          const leaf = leafOnceChainTaken(socket);
          const after = chainDepth(socket.getPeerCertificate(true) as DetailedPeerCertificate);
          const countBefore = leaf === undefined ? null : presentedChainLength(socket);
          resolve({ before, after, leafFp: leaf?.fingerprint256 ?? null, summaryFp, countBefore });
        } catch (err) {
          reject(err as Error);
        } finally {
          socket.destroy();
          srv.close();
        }
      });
      srv.listen(0, '127.0.0.1', () => {
        const c = tls.connect({ port: (srv.address() as AddressInfo).port, host: '127.0.0.1', servername: 'localhost', ca: root.certPem, cert: client.certPem + inter.certPem, key: client.keyPem });
        // The server only ever ends this connection; a failed handshake must fail the test, not hang it.
        c.on('error', (err) => {
          srv.close();
          reject(err);
        });
        c.on('close', () => undefined);
      });
    });
    const label = recorder ? 'with the recorder' : 'without it';
    t.equal(seen.after, seen.before, `${label}: the chain getPeerCertificate(true) reports is untouched (${seen.before})`);
    if (seen.leafFp !== null) {
      t.equal(seen.leafFp, seen.summaryFp, `${label}: the leaf it returned is the client's`);
      t.equal(seen.countBefore, 2, `${label}: the presented-chain count still sees leaf + intermediate`);
    } else {
      t.pass(`${label}: nothing returned, the caller keeps to getPeerCertificate(false)`);
    }
    if (!recorder) t.equal(seen.leafFp, null, 'without the recorder it never returns a leaf (it cannot know the chain is gone)');
  }
});
