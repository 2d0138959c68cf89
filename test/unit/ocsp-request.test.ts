// OCSP requests: the CertID names the certificate the way responders (and OpenSSL) do, the request
// DER is what `openssl ocsp` would send, responder URLs come only from the AIA's id-ad-ocsp http(s)
// URIs, and both HTTP encodings (POST body, GET path) reach the responder intact.
import 'reflect-metadata';
import t from 'tap';
import * as x509 from '@peculiar/x509';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes, X509Certificate, type webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRootCa, type Ca } from '../../src/pki/dev-pki.js';
import { certIdFor, encodeOcspRequest, ocspUrlsOf } from '../../src/revocation/ocsp-request.js';
import { verifyOcspResponse } from '../../src/revocation/ocsp-response.js';
import { walkCertificate } from '../../src/x509/cert-fields.js';
import { decodeGetPath, issueLeafWithOcsp, parseOcspRequest, startOcspResponder } from '../helpers/ocsp-responder.js';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const dir = mkdtempSync(path.join(os.tmpdir(), 'ocsp-request-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const ecCa = await createRootCa({ name: 'ec', subject: { CN: 'OCSP EC CA', O: 'Example' } });
const rsaCa = await createRootCa({ name: 'rsa', subject: { CN: 'OCSP RSA CA', O: 'Example' }, keyAlgorithm: 'RSA-2048' });
const node = (c: { der: Buffer }): X509Certificate => new X509Certificate(c.der);
const sha1 = (b: Buffer): Buffer => createHash('sha1').update(b).digest();

/** A leaf whose serial has the high bit set, so its DER INTEGER carries a 00 sign octet. */
async function highBitLeaf(ca: Ca): Promise<Buffer> {
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '00f1e2d3c4b5a69788', subject: 'CN=high bit', issuer: ca.cert.subjectName,
    notBefore: new Date(Date.now() - 3600_000), notAfter: new Date(Date.now() + 86_400_000),
    publicKey: keys.publicKey, signingKey: ca.keys.privateKey, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
  });
  return Buffer.from(cert.rawData);
}

t.test('certIdFor hashes the issuer name and key and keeps the serial as encoded', async (tt) => {
  for (const ca of [ecCa, rsaCa]) {
    const leaf = await issueLeafWithOcsp(ca, { ocspUrls: [] });
    const id = certIdFor(leaf.der, node(ca));
    const l = walkCertificate(ca.der);
    tt.same(id.issuerNameHash, sha1(ca.der.subarray(l.subject.start, l.subject.end)), `${ca.name}: name hash`);
    tt.equal(id.issuerKeyHash.length, 20);
    tt.equal(id.serial, leaf.serial, `${ca.name}: canonical serial`);
    tt.equal(id.serial, node(leaf).serialNumber.toUpperCase());
  }
  const hb = await highBitLeaf(ecCa);
  const id = certIdFor(hb, node(ecCa));
  tt.equal(id.serial, 'F1E2D3C4B5A69788', 'leading sign octet dropped from the canonical serial');
  tt.equal(id.serialDer.toString('hex'), '00f1e2d3c4b5a69788', 'serialDer keeps the INTEGER as encoded');
  tt.throws(() => certIdFor(Buffer.from('nonsense'), node(ecCa)), { name: 'DerError' });
});

t.test('encodeOcspRequest round-trips through a request parser', async (tt) => {
  const leaf = await issueLeafWithOcsp(ecCa, { ocspUrls: [] });
  const id = certIdFor(leaf.der, node(ecCa));
  const plain = parseOcspRequest(encodeOcspRequest(id, null));
  tt.equal(plain.certIds.length, 1);
  tt.match(plain.certIds[0], { hashAlgOid: '1.3.14.3.2.26', serial: id.serial });
  tt.same(plain.certIds[0]!.issuerKeyHash, id.issuerKeyHash);
  tt.equal(plain.nonce, null);
  const nonce = randomBytes(32);
  const withNonce = parseOcspRequest(encodeOcspRequest(id, nonce));
  tt.same(withNonce.nonce, nonce, 'nonce carried');
  tt.same(withNonce.nonceValue, Buffer.concat([Buffer.from([0x04, 32]), nonce]), 'RFC 8954: OCTET STRING wrapping the nonce');
  tt.throws(() => encodeOcspRequest(id, Buffer.alloc(0)), RangeError, 'empty nonce refused');
  tt.throws(() => encodeOcspRequest(id, Buffer.alloc(33)), RangeError, 'nonce over 32 octets refused');
});

t.test('the request is byte-identical to openssl ocsp -reqout, and openssl reads ours', { skip: !hasOpenssl && 'openssl not installed' }, async (tt) => {
  for (const ca of [ecCa, rsaCa]) {
    const leaves = [(await issueLeafWithOcsp(ca, { ocspUrls: [] })).der, await highBitLeaf(ca)];
    for (const [i, leafDer] of leaves.entries()) {
      const caFile = path.join(dir, `${ca.name}.pem`);
      const leafFile = path.join(dir, `${ca.name}-${i}.pem`);
      const reqFile = path.join(dir, `${ca.name}-${i}.req`);
      writeFileSync(caFile, ca.certPem);
      writeFileSync(leafFile, new X509Certificate(leafDer).toString());
      const r = spawnSync('openssl', ['ocsp', '-issuer', caFile, '-cert', leafFile, '-no_nonce', '-reqout', reqFile], { encoding: 'utf8' });
      tt.equal(r.status, 0, r.stderr);
      const ours = encodeOcspRequest(certIdFor(leafDer, node(ca)), null);
      tt.equal(ours.toString('hex'), readFileSync(reqFile).toString('hex'), `${ca.name} leaf ${i}: same bytes as openssl`);

      const nonce = randomBytes(16);
      const withNonce = path.join(dir, `${ca.name}-${i}-nonce.req`);
      writeFileSync(withNonce, encodeOcspRequest(certIdFor(leafDer, node(ca)), nonce));
      const text = spawnSync('openssl', ['ocsp', '-reqin', withNonce, '-req_text'], { encoding: 'utf8' });
      tt.equal(text.status, 0, text.stderr);
      const flat = text.stdout.replace(/[\s:]/g, '').toLowerCase();
      tt.ok(flat.includes(`serialnumber${new X509Certificate(leafDer).serialNumber.toLowerCase()}`), 'openssl reads the serial');
      tt.ok(flat.includes(`0410${nonce.toString('hex')}`), 'openssl reads the wrapped nonce');
      tt.match(text.stdout, /Hash Algorithm: sha1/);
    }
  }
});

t.test('ocspUrlsOf returns the http(s) id-ad-ocsp URIs in order, [] otherwise, never throws', async (tt) => {
  const two = await issueLeafWithOcsp(ecCa, { ocspUrls: ['http://ocsp.example.test/a', 'https://ocsp2.example.test:8443/b?x=1'] });
  tt.same(ocspUrlsOf(two.der), ['http://ocsp.example.test/a', 'https://ocsp2.example.test:8443/b?x=1']);
  const none = await issueLeafWithOcsp(ecCa, { ocspUrls: [] });
  tt.same(ocspUrlsOf(none.der), [], 'no AIA');
  const odd = await issueLeafWithOcsp(ecCa, { ocspUrls: ['ldap://ocsp.example.test/x', 'http://has space', 'HTTP://UPPER.example.test/', 'file:///etc/passwd'] });
  tt.same(ocspUrlsOf(odd.der), ['HTTP://UPPER.example.test/'], 'only printable http(s) URLs');

  // An AIA with only caIssuers carries no responder.
  const keys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const caIssuersOnly = await x509.X509CertificateGenerator.create({
    serialNumber: '01', subject: 'CN=ca issuers only', issuer: ecCa.cert.subjectName, notBefore: new Date(), notAfter: new Date(Date.now() + 86_400_000),
    publicKey: keys.publicKey, signingKey: ecCa.keys.privateKey, signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [new x509.AuthorityInfoAccessExtension({ caIssuers: 'http://ca.example.test/ca.crt' })],
  });
  tt.same(ocspUrlsOf(Buffer.from(caIssuersOnly.rawData)), []);

  const many = await issueLeafWithOcsp(ecCa, { ocspUrls: Array.from({ length: 20 }, (_, i) => `http://o${i}.example.test/`) });
  tt.equal(ocspUrlsOf(many.der).length, 8, 'bounded');

  for (const bad of [Buffer.alloc(0), Buffer.from('garbage'), two.der.subarray(0, two.der.length - 1), Buffer.concat([two.der, Buffer.from([0])])]) {
    tt.same(ocspUrlsOf(bad), [], 'malformed certificate reads as no responder');
  }
  // A broken AIA inside an otherwise well-formed certificate: corrupt the access method OID's tag.
  const broken = Buffer.from(two.der);
  const at = broken.indexOf(Buffer.from('06082b06010505073001', 'hex'));
  tt.ok(at > 0);
  broken[at] = 0x04;
  tt.same(ocspUrlsOf(broken), []);
});

t.test('GET and POST requests reach the test responder and come back verifiable', async (tt) => {
  const responder = await startOcspResponder({ issuerCertPem: ecCa.certPem, issuerKeyPem: ecCa.keyPem });
  tt.teardown(() => responder.close());
  const leaf = await issueLeafWithOcsp(ecCa, { ocspUrls: [responder.url] });
  const id = certIdFor(leaf.der, node(ecCa));
  const nonce = randomBytes(16);
  const req = encodeOcspRequest(id, nonce);

  tt.same(decodeGetPath('/' + encodeURIComponent(req.toString('base64'))), req, 'percent-encoded base64');
  tt.same(decodeGetPath('/' + req.toString('base64url')), req, 'base64url');
  tt.throws(() => decodeGetPath('/not*base64'));

  const post = await fetch(responder.url, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: req });
  tt.equal(post.headers.get('content-type'), 'application/ocsp-response');
  const postCheck = verifyOcspResponse(Buffer.from(await post.arrayBuffer()), { certId: id, issuer: node(ecCa), now: Date.now(), nonce });
  tt.match(postCheck, { ok: true, answer: { status: 'good', signer: 'issuer' } });
  tt.match(responder.lastRequest, { method: 'POST', serials: [id.serial] });

  const get = await fetch(`${responder.url}/${encodeURIComponent(req.toString('base64'))}`);
  const getCheck = verifyOcspResponse(Buffer.from(await get.arrayBuffer()), { certId: id, issuer: node(ecCa), now: Date.now(), nonce });
  tt.match(getCheck, { ok: true, answer: { status: 'good' } });
  tt.match(responder.lastRequest, { method: 'GET', serials: [id.serial] });
  tt.same(responder.lastRequest?.nonce, nonce);
  tt.equal(responder.requests, 2);

  // Junk requests get malformedRequest, not a crash.
  const junk = await fetch(responder.url, { method: 'POST', body: Buffer.from('junk') });
  tt.match(verifyOcspResponse(Buffer.from(await junk.arrayBuffer()), { certId: id, issuer: node(ecCa), now: Date.now(), nonce: null }), { ok: false, failure: 'error-status', reason: /malformedRequest/ });
});
