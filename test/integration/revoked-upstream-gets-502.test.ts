// The upstream's certificate chain is checked by the same in-process engine: a revoked upstream
// gets 502 GW_ERR_UPSTREAM_CERT_REVOKED, also when it is revoked while the gateway holds pooled
// keep-alive connections to it (undici's connection and TLS session reuse cannot keep it reachable).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import t from 'tap';
import { createCrl } from '../../src/pki/dev-pki.js';
import { replaceFile } from '../helpers/crl-files.js';
import { makeTestPki, startStack } from '../helpers/harness.js';

const UPSTREAM_CRL = '      crl: [./up-root.crl.pem, ./up-intermediate.crl.pem]\n      revocation: { pollInterval: 1h }';

t.test('revoked upstream certificate: 502', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({
    pki,
    upstreamExtra: UPSTREAM_CRL,
    beforeStart: async (dir) => {
      await writeFile(path.join(dir, 'up-root.crl.pem'), pki.rootCrl.pem);
      const crl = await createCrl(pki.intermediate, { revoked: [{ serial: pki.upstreams['orders']!.serial, reason: 'keyCompromise' }], crlNumber: 2 });
      await writeFile(path.join(dir, 'up-intermediate.crl.pem'), crl.pem);
    },
  });
  t.teardown(() => s.close());
  const r = await s.send(pki.clients['billing']!, { path: '/orders' });
  t.equal(r.status, 502);
  t.match(r.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_REVOKED' } });
  t.equal(s.upstream.seen.length, 0, 'no request reached the revoked upstream');
});

t.test('upstream revoked while pooled connections are open: the next request gets 502', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({
    pki,
    upstreamExtra: UPSTREAM_CRL,
    beforeStart: async (dir) => {
      await writeFile(path.join(dir, 'up-root.crl.pem'), pki.rootCrl.pem);
      await writeFile(path.join(dir, 'up-intermediate.crl.pem'), pki.intermediateCrl.pem);
    },
  });
  t.teardown(() => s.close());
  t.equal((await s.send(pki.clients['billing']!, { path: '/orders/1' })).status, 200);
  t.equal((await s.send(pki.clients['billing']!, { path: '/orders/2' })).status, 200, 'served over the pooled connection');

  const crl = await createCrl(pki.intermediate, { revoked: [{ serial: pki.upstreams['orders']!.serial }], crlNumber: 2 });
  await replaceFile(path.join(s.dir, 'up-intermediate.crl.pem'), crl.pem);
  await s.gw.gateway.reload('test');
  const r = await s.send(pki.clients['billing']!, { path: '/orders/3' });
  t.equal(r.status, 502);
  t.match(r.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_REVOKED' } });
  t.equal(s.upstream.seen.length, 2, 'the revoked upstream got nothing after the CRL update');
});

t.test('upstream chain without a CRL for its issuer: 502 under missing: deny', async (t) => {
  const pki = await makeTestPki();
  const s = await startStack({
    pki,
    upstreamExtra: '      crl: [./up-root.crl.pem]',
    beforeStart: async (dir) => writeFile(path.join(dir, 'up-root.crl.pem'), pki.rootCrl.pem),
  });
  t.teardown(() => s.close());
  const r = await s.send(pki.clients['billing']!, { path: '/orders' });
  t.equal(r.status, 502);
  t.match(r.json, { error: { code: 'GW_ERR_UPSTREAM_CERT_REVOCATION_UNKNOWN' } });
});
