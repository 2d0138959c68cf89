// OCSP response verification (RFC 6960 4.2.2): an answer counts only when the certificate's CA or a
// responder it delegated to (issued by it, id-kp-OCSPSigning, currently valid) signed it, it is for
// our CertID, inside its time window, and echoes our nonce. Security: every refusal below is an
// answer an attacker on the path, or a broken responder, could send; none may be read as "good",
// and no input may throw.
import 'reflect-metadata';
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, KeyObject, randomBytes, X509Certificate, type webcrypto } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRootCa, type Ca, type KeyAlgorithm } from '../../src/pki/dev-pki.js';
import { certIdFor, encodeOcspRequest, type OcspCertId } from '../../src/revocation/ocsp-request.js';
import { readSignedParts, verifyCertificateSignature, verifySignedData } from '../../src/x509/verify-signature.js';
import { MAX_OCSP_RESPONSE_BYTES, verifyOcspResponse, type OcspCheck, type VerifyOcspOptions } from '../../src/revocation/ocsp-response.js';
import {
  buildOcspErrorResponse, buildOcspResponse, issueLeafWithOcsp, issueOcspResponderCert, startOcspResponder, wrapNonce,
  type BuildOcspResponseOptions, type OcspSingleAnswer,
} from '../helpers/ocsp-responder.js';

const MIN = 60_000;
const HOUR = 60 * MIN;
const hasOpenssl = spawnSync('openssl', ['version']).status === 0;
const dir = mkdtempSync(path.join(os.tmpdir(), 'ocsp-verify-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

interface Fixture {
  readonly alg: KeyAlgorithm;
  readonly ca: Ca;
  readonly caNode: X509Certificate;
  readonly caKey: KeyObject;
  readonly id: OcspCertId;
  readonly leafDer: Buffer;
}

async function fixture(alg: KeyAlgorithm): Promise<Fixture> {
  const ca = await createRootCa({ name: `ca-${alg}`, subject: { CN: `OCSP Test CA ${alg}`, O: 'Example' }, keyAlgorithm: alg });
  const leaf = await issueLeafWithOcsp(ca, { ocspUrls: ['http://127.0.0.1:1/'] });
  const caNode = new X509Certificate(ca.der);
  return { alg, ca, caNode, caKey: KeyObject.from(ca.keys.privateKey), id: certIdFor(leaf.der, caNode), leafDer: leaf.der };
}

const ec = await fixture('ECDSA-P256');
const rsa = await fixture('RSA-2048');
const now = Math.floor(Date.now() / 1000) * 1000;

function answer(f: Fixture, o: Partial<OcspSingleAnswer> = {}): OcspSingleAnswer {
  return { certId: f.id, status: 'good', thisUpdate: new Date(now - MIN), nextUpdate: new Date(now + HOUR), ...o };
}

function respond(f: Fixture, o: Partial<BuildOcspResponseOptions> = {}): Buffer {
  return buildOcspResponse({ signerKey: f.caKey, responderCertDer: f.ca.der, producedAt: new Date(now), answers: [answer(f)], ...o });
}

function check(f: Fixture, der: Buffer, o: Partial<VerifyOcspOptions> = {}): OcspCheck {
  return verifyOcspResponse(der, { certId: f.id, issuer: f.caNode, now, nonce: null, ...o });
}

for (const f of [ec, rsa]) {
  t.test(`${f.alg}: statuses signed by the issuer`, async (tt) => {
    tt.same(check(f, respond(f)), {
      ok: true,
      answer: { status: 'good', thisUpdate: new Date(now - MIN), nextUpdate: new Date(now + HOUR), producedAt: new Date(now), revokedAt: null, reason: null, signer: 'issuer' },
    });
    const revokedAt = new Date(now - 2 * HOUR);
    tt.match(check(f, respond(f, { answers: [answer(f, { status: 'revoked', revokedAt, reason: 1 })] })), {
      ok: true, answer: { status: 'revoked', revokedAt, reason: 'keyCompromise' },
    });
    tt.match(check(f, respond(f, { answers: [answer(f, { status: 'revoked', revokedAt })] })), { ok: true, answer: { status: 'revoked', reason: null } });
    tt.match(check(f, respond(f, { answers: [answer(f, { status: 'revoked', revokedAt, reason: 7 })] })), { ok: true, answer: { reason: 'reason-7' } });
    tt.match(check(f, respond(f, { answers: [answer(f, { status: 'unknown' })] })), { ok: true, answer: { status: 'unknown' } });
    tt.match(check(f, respond(f, { responderId: 'key' })), { ok: true, answer: { signer: 'issuer' } }, 'ResponderID byKey');
    tt.match(check(f, respond(f, { answers: [answer(f, { nextUpdate: null })] })), { ok: true, answer: { nextUpdate: null } }, 'no nextUpdate');
  });
}

t.test('RSASSA-PSS responses verify; SHA-1 certIDs of others are skipped', async (tt) => {
  tt.match(check(rsa, respond(rsa, { rsaPss: true })), { ok: true });
  const other = { ...rsa.id, serialDer: Buffer.from([0x7f]) };
  const sha256Id = { ...rsa.id, hashAlgOid: '2.16.840.1.101.3.4.2.1' };
  tt.match(check(rsa, respond(rsa, { answers: [answer(rsa, { certId: other }), answer(rsa, { status: 'revoked' })] })), { ok: true, answer: { status: 'revoked' } }, 'ours found among several');
  tt.match(check(rsa, respond(rsa, { answers: [answer(rsa, { certId: sha256Id })] })), { ok: false, failure: 'certid-mismatch' }, 'only SHA-1 CertIDs match');
});

t.test('signatures and signers the issuer did not authorize are refused', async (tt) => {
  const f = ec;
  const rogue = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
  tt.match(check(f, respond(f, { signerKey: rogue })), { ok: false, failure: 'bad-signature', reason: /does not verify with the issuer key/ }, 'claims the issuer, signed by another key');
  tt.match(check(f, respond(f, { signerKey: rogue, responderId: 'key' })), { ok: false, failure: 'bad-signature' });
  tt.match(check(f, respond(f, { signerKey: generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey })), { ok: false, failure: 'bad-signature', reason: /issuer key is ec/ });

  const tampered = respond(f);
  const good = tampered.indexOf(Buffer.from([0x80, 0x00, 0x18]));
  tampered[good] = 0x82; // good -> unknown inside the signed data
  tt.match(check(f, tampered), { ok: false, failure: 'bad-signature' }, 'modified ResponseData');

  const otherCa = await createRootCa({ name: 'other', subject: { CN: 'Other CA', O: 'Example' } });
  tt.match(check(f, respond(f, { signerKey: KeyObject.from(otherCa.keys.privateKey), responderCertDer: otherCa.der })), {
    ok: false, failure: 'unauthorized-signer', reason: /neither the issuer nor/,
  }, 'another CA answering');
});

t.test('delegated responders: issued by the CA, OCSPSigning, valid now', async (tt) => {
  const f = ec;
  const ok = await issueOcspResponderCert(f.ca);
  const key = KeyObject.from(ok.keys.privateKey);
  const delegated = (cert: { der: Buffer }, o: Partial<BuildOcspResponseOptions> = {}): Buffer =>
    respond(f, { signerKey: key, responderCertDer: cert.der, certs: [cert.der], ...o });

  tt.match(check(f, delegated(ok)), { ok: true, answer: { status: 'good', signer: 'CN=OCSP Responder,O=Example' } });
  tt.match(check(f, delegated(ok, { responderId: 'key' })), { ok: true, answer: { signer: 'CN=OCSP Responder,O=Example' } }, 'byKey');
  tt.match(check(f, delegated(ok, { certs: [f.ca.der, ok.der] })), { ok: true }, 'found among several certificates');
  tt.match(check(f, delegated(ok, { certs: [] })), { ok: false, failure: 'unauthorized-signer' }, 'responder certificate not included');
  tt.match(check(f, delegated(ok, { signerKey: f.caKey })), { ok: false, failure: 'bad-signature', reason: /responder key/ }, 'names the delegate, signed by another key');

  const noEku = await issueOcspResponderCert(f.ca, { ocspSigning: false, cn: 'No EKU' });
  tt.match(check(f, delegated(noEku, { signerKey: KeyObject.from(noEku.keys.privateKey) })), {
    ok: false, failure: 'unauthorized-signer', reason: /CN=No EKU.*OCSPSigning/,
  }, 'without id-kp-OCSPSigning');

  const otherKeys = (await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
  const forged = await issueOcspResponderCert(f.ca, { signingKeys: otherKeys, cn: 'Forged' });
  tt.match(check(f, delegated(forged, { signerKey: KeyObject.from(forged.keys.privateKey) })), {
    ok: false, failure: 'unauthorized-signer', reason: /not signed by the certificate's CA/,
  }, 'names the CA as issuer but not signed by it');

  const otherCa = await createRootCa({ name: 'other', subject: { CN: 'Other CA', O: 'Example' } });
  const foreign = await issueOcspResponderCert(otherCa, { cn: 'Foreign' });
  tt.match(check(f, delegated(foreign, { signerKey: KeyObject.from(foreign.keys.privateKey) })), {
    ok: false, failure: 'unauthorized-signer', reason: /issuer name differs/,
  }, 'issued by another CA');

  const expired = await issueOcspResponderCert(f.ca, { cn: 'Expired', notBefore: new Date(now - 10 * HOUR), notAfter: new Date(now - HOUR) });
  tt.match(check(f, delegated(expired, { signerKey: KeyObject.from(expired.keys.privateKey) })), { ok: false, failure: 'unauthorized-signer', reason: /expired at/ });
  const early = await issueOcspResponderCert(f.ca, { cn: 'Early', notBefore: new Date(now + HOUR), notAfter: new Date(now + 10 * HOUR) });
  tt.match(check(f, delegated(early, { signerKey: KeyObject.from(early.keys.privateKey) })), { ok: false, failure: 'unauthorized-signer', reason: /not valid before/ });

  // An RSA delegate under an EC CA (and the reverse) works: the algorithm follows each key.
  const rsaDelegate = await issueOcspResponderCert(f.ca, { keyAlgorithm: 'RSA-2048', cn: 'RSA Responder' });
  tt.match(check(f, delegated(rsaDelegate, { signerKey: KeyObject.from(rsaDelegate.keys.privateKey) })), { ok: true, answer: { signer: 'CN=RSA Responder,O=Example' } });
});

t.test('time window: thisUpdate not in the future, nextUpdate not past, with skew', async (tt) => {
  const f = ec;
  const at = (thisUpdate: number, nextUpdate: number | null): Buffer =>
    respond(f, { answers: [answer(f, { thisUpdate: new Date(thisUpdate), nextUpdate: nextUpdate === null ? null : new Date(nextUpdate) })] });
  tt.match(check(f, at(now - 2 * HOUR, now - 10 * MIN)), { ok: false, failure: 'expired' });
  tt.match(check(f, at(now - 2 * HOUR, now - 1 * MIN)), { ok: true }, 'inside the default 5-minute skew');
  tt.match(check(f, at(now - 2 * HOUR, now - 1 * MIN), { clockSkewMs: 0 }), { ok: false, failure: 'expired' });
  tt.match(check(f, at(now + 10 * MIN, now + HOUR)), { ok: false, failure: 'not-yet-valid' });
  tt.match(check(f, at(now + 1 * MIN, now + HOUR)), { ok: true }, 'responder clock slightly ahead');
  tt.match(check(f, at(now + 1 * MIN, now + HOUR), { clockSkewMs: 0 }), { ok: false, failure: 'not-yet-valid' });
  tt.match(check(f, at(now, now - MIN)), { ok: false, failure: 'malformed', reason: /before thisUpdate/ });
});

t.test('CertID must match: serial, issuer name hash, issuer key hash', async (tt) => {
  const f = ec;
  const flip = (b: Buffer): Buffer => Buffer.concat([b.subarray(0, -1), Buffer.from([b[b.length - 1]! ^ 1])]);
  for (const [field, id] of [
    ['serial', { ...f.id, serialDer: flip(f.id.serialDer) }],
    ['name hash', { ...f.id, issuerNameHash: flip(f.id.issuerNameHash) }],
    ['key hash', { ...f.id, issuerKeyHash: flip(f.id.issuerKeyHash) }],
  ] as const) {
    tt.match(check(f, respond(f, { answers: [answer(f, { certId: id })] })), { ok: false, failure: 'certid-mismatch' }, field);
  }
  tt.match(check(f, respond(f, { answers: [] })), { ok: false, failure: 'certid-mismatch', reason: /none of the 0/ });
  tt.match(check(f, respond(f, { answers: [answer(f), answer(f, { status: 'revoked' })] })), { ok: false, failure: 'malformed', reason: /2 answers/ }, 'two answers for one certificate');
  // A leading zero octet in the answered serial still names the same certificate.
  const padded = { ...f.id, serialDer: Buffer.concat([Buffer.from([0]), f.id.serialDer]) };
  tt.match(check(f, respond(f, { answers: [answer(f, { certId: padded })] })), { ok: true });
});

t.test('nonce: echoed (RFC 8954 or bare) is accepted, missing or different is refused', async (tt) => {
  const f = ec;
  const nonce = randomBytes(16);
  tt.match(check(f, respond(f, { nonceValue: wrapNonce(nonce) }), { nonce }), { ok: true });
  tt.match(check(f, respond(f, { nonceValue: nonce }), { nonce }), { ok: true }, 'bare echo of older responders');
  tt.match(check(f, respond(f), { nonce }), { ok: false, failure: 'nonce-mismatch', reason: /does not echo/ });
  tt.match(check(f, respond(f, { nonceValue: wrapNonce(randomBytes(16)) }), { nonce }), { ok: false, failure: 'nonce-mismatch', reason: /different/ });
  tt.match(check(f, respond(f, { nonceValue: wrapNonce(nonce.subarray(1)) }), { nonce }), { ok: false, failure: 'nonce-mismatch' }, 'prefix of the nonce');
  tt.match(check(f, respond(f, { nonceValue: wrapNonce(nonce) })), { ok: true }, 'a nonce nobody asked for is ignored');
});

t.test('error statuses and unsupported responses', async (tt) => {
  const f = ec;
  for (const [code, name] of [[1, 'malformedRequest'], [2, 'internalError'], [3, 'tryLater'], [5, 'sigRequired'], [6, 'unauthorized'], [4, 'status 4'], [99, 'status 99']] as const) {
    tt.match(check(f, buildOcspErrorResponse(code)), { ok: false, failure: 'error-status', reason: new RegExp(name) }, name);
  }
  // Successful status with another response type.
  const basic = respond(f);
  const otherType = Buffer.from(basic);
  const oidAt = otherType.indexOf(Buffer.from('2b0601050507300101', 'hex'));
  otherType[oidAt + 8] = 0x09;
  tt.match(check(f, otherType), { ok: false, failure: 'unsupported', reason: /1\.3\.6\.1\.5\.5\.7\.48\.1\.9/ });

  const criticalExt = { oid: '1.2.3.4.5', critical: true, value: Buffer.from([0x05, 0x00]) };
  const plainExt = { oid: '1.2.3.4.5', value: Buffer.from([0x05, 0x00]) };
  tt.match(check(f, respond(f, { extensions: [criticalExt] })), { ok: false, failure: 'unsupported', reason: /response extension.*1\.2\.3\.4\.5/ });
  tt.match(check(f, respond(f, { extensions: [plainExt] })), { ok: true }, 'non-critical unknown response extension ignored');
  tt.match(check(f, respond(f, { answers: [answer(f, { extensions: [criticalExt] })] })), { ok: false, failure: 'unsupported', reason: /single-response/ });
  tt.match(check(f, respond(f, { answers: [answer(f, { extensions: [plainExt] })] })), { ok: true });
  tt.match(check(f, respond(f, { extensions: [plainExt, plainExt] })), { ok: false, failure: 'malformed', reason: /duplicate/ });
});

t.test('hostile bytes: never throws, always malformed', async (tt) => {
  const f = ec;
  const good = respond(f, { nonceValue: wrapNonce(randomBytes(8)), certs: [f.ca.der] });
  const inputs: Buffer[] = [
    Buffer.alloc(0),
    Buffer.from('this is not an OCSP response'),
    Buffer.from([0x30]),
    Buffer.from([0x30, 0x84, 0xff, 0xff, 0xff, 0xff]),
    Buffer.from([0x30, 0x80, 0x0a, 0x01, 0x00, 0x00, 0x00]),
    Buffer.from([0x30, 0x03, 0x0a, 0x01, 0x00]),
    Buffer.concat([good, Buffer.from([0x00])]),
    Buffer.alloc(MAX_OCSP_RESPONSE_BYTES + 1, 0x30),
  ];
  for (const input of inputs) {
    const r = check(f, input);
    tt.match(r, { ok: false, failure: 'malformed' }, `${input.length} bytes`);
  }
  tt.match(verifyOcspResponse('nope' as unknown as Buffer, { certId: f.id, issuer: f.caNode, now, nonce: null }), { ok: false, failure: 'malformed' });

  let threw = 0;
  let accepted = 0;
  for (let len = 0; len < good.length; len++) {
    try {
      if (check(f, good.subarray(0, len)).ok) accepted++;
    } catch {
      threw++;
    }
  }
  tt.equal(threw, 0, 'no truncation throws');
  tt.equal(accepted, 0, 'no truncation is accepted');

  // Single-byte mutations from a fixed-seed generator (reproducible): none may throw, and one that is
  // accepted can only have changed bytes outside the signed ResponseData (the carried certificate).
  let seed = 0x2545f491;
  const next = (n: number): number => {
    seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
    return seed % n;
  };
  const wrongAnswers: string[] = [];
  for (let i = 0; i < 600; i++) {
    const m = Buffer.from(good);
    m[next(m.length)] = next(256);
    try {
      const r = check(f, m);
      if (r.ok && r.answer.status !== 'good') wrongAnswers.push(r.answer.status);
    } catch (err) {
      threw++;
      tt.fail(`mutation threw: ${(err as Error).message}`);
    }
  }
  tt.same(wrongAnswers, [], 'no mutation changes the answer');
  tt.equal(threw, 0);

  const many = (n: number): OcspSingleAnswer[] => Array.from({ length: n }, () => answer(f));
  tt.match(check(f, respond(f, { answers: many(65) })), { ok: false, failure: 'malformed', reason: /more than 64 single responses/ });
  tt.match(check(f, respond(f, { certs: Array.from({ length: 65 }, () => f.ca.der) })), { ok: false, failure: 'malformed', reason: /more than 64 certificates/ });
  tt.match(check(f, respond(f, { certs: [Buffer.from([0x30, 0x00])] })), { ok: true }, 'an unreadable extra certificate is ignored when the issuer signed');
});

t.test('interop with OpenSSL: its responder, our verifier; our responder, its verifier', { skip: !hasOpenssl && 'openssl not installed' }, async (tt) => {
  for (const f of [ec, rsa]) {
    const caFile = path.join(dir, `${f.alg}-ca.pem`);
    const keyFile = path.join(dir, `${f.alg}-ca.key`);
    const leafFile = path.join(dir, `${f.alg}-leaf.pem`);
    const index = path.join(dir, `${f.alg}-index.txt`);
    const reqFile = path.join(dir, `${f.alg}.req`);
    const respFile = path.join(dir, `${f.alg}.resp`);
    writeFileSync(caFile, f.ca.certPem);
    writeFileSync(keyFile, f.ca.keyPem);
    writeFileSync(leafFile, new X509Certificate(f.leafDer).toString());
    const nonce = randomBytes(16);
    writeFileSync(reqFile, encodeOcspRequest(f.id, nonce));

    for (const [line, expected] of [
      [`V\t300101000000Z\t\t${f.id.serial}\tunknown\t/CN=leaf`, { status: 'good', reason: null }],
      [`R\t300101000000Z\t240101000000Z,keyCompromise\t${f.id.serial}\tunknown\t/CN=leaf`, { status: 'revoked', reason: 'keyCompromise', revokedAt: new Date('2024-01-01T00:00:00Z') }],
    ] as const) {
      writeFileSync(index, line + '\n');
      const r = spawnSync('openssl', ['ocsp', '-index', index, '-rsigner', caFile, '-rkey', keyFile, '-CA', caFile, '-reqin', reqFile, '-respout', respFile, '-nmin', '60'], { encoding: 'utf8' });
      tt.equal(r.status, 0, r.stderr);
      tt.match(check(f, readFileSync(respFile), { nonce, now: Date.now() }), { ok: true, answer: { ...expected, signer: 'issuer' } }, `${f.alg}: openssl ${expected.status}`);
    }

    // Our responder's answers, issuer-signed and delegated, pass `openssl ocsp -respin` verification.
    const delegate = await issueOcspResponderCert(f.ca);
    for (const signer of ['issuer', { certPem: delegate.certPem, keyPem: delegate.keyPem }] as const) {
      const responder = await startOcspResponder({ issuerCertPem: f.ca.certPem, issuerKeyPem: f.ca.keyPem, signer });
      const res = await fetch(responder.url, { method: 'POST', body: encodeOcspRequest(f.id, nonce) });
      writeFileSync(respFile, Buffer.from(await res.arrayBuffer()));
      await responder.close();
      const v = spawnSync('openssl', ['ocsp', '-respin', respFile, '-issuer', caFile, '-CAfile', caFile, '-cert', leafFile, '-no_nonce'], { encoding: 'utf8' });
      tt.equal(v.status, 0, v.stderr);
      tt.match(v.stderr + v.stdout, /Response verify OK/, `${f.alg}/${typeof signer === 'string' ? signer : 'delegated'}: openssl verifies`);
      tt.match(v.stdout, /: good/);
    }
  }
});

t.test('the test responder: statuses, modes and validity produce what the integration tests expect', async (tt) => {
  const f = ec;
  const delegate = await issueOcspResponderCert(f.ca, { cn: 'Modes Responder' });
  const responder = await startOcspResponder({ issuerCertPem: f.ca.certPem, issuerKeyPem: f.ca.keyPem, signer: { certPem: delegate.certPem, keyPem: delegate.keyPem }, validityMs: 3000 });
  tt.teardown(() => responder.close());
  const ask = async (nonce: Buffer | null = randomBytes(16)): Promise<OcspCheck> => {
    const res = await fetch(responder.url, { method: 'POST', headers: { 'content-type': 'application/ocsp-request' }, body: encodeOcspRequest(f.id, nonce) });
    return verifyOcspResponse(Buffer.from(await res.arrayBuffer()), { certId: f.id, issuer: f.caNode, now: Date.now(), nonce });
  };

  const first = await ask();
  tt.match(first, { ok: true, answer: { status: 'good', signer: 'CN=Modes Responder,O=Example' } });
  if (first.ok) tt.equal(first.answer.nextUpdate!.getTime() - first.answer.thisUpdate.getTime(), 3000, 'validityMs');
  responder.setStatus(f.id.serial, 'revoked', { reason: 'keyCompromise', revokedAt: new Date('2030-01-02T03:04:05Z') });
  tt.match(await ask(), { ok: true, answer: { status: 'revoked', reason: 'keyCompromise', revokedAt: new Date('2030-01-02T03:04:05Z') } });
  responder.setStatus(f.id.serial.toLowerCase(), 'unknown');
  tt.match(await ask(), { ok: true, answer: { status: 'unknown' } }, 'serials in any case');
  responder.setStatus(f.id.serial, 'good');

  const expectations: ReadonlyArray<readonly [Parameters<typeof responder.setMode>[0], Partial<Record<'failure', string>> & { ok: boolean }]> = [
    ['error', { ok: false, failure: 'error-status' }],
    ['wrong-signer', { ok: false, failure: 'bad-signature' }],
    ['expired', { ok: false, failure: 'expired' }],
    ['future', { ok: false, failure: 'not-yet-valid' }],
    ['mismatch', { ok: false, failure: 'certid-mismatch' }],
    ['garbage', { ok: false, failure: 'malformed' }],
    ['no-nonce', { ok: false, failure: 'nonce-mismatch' }],
    ['wrong-nonce', { ok: false, failure: 'nonce-mismatch' }],
    ['normal', { ok: true }],
  ];
  for (const [mode, expected] of expectations) {
    responder.setMode(mode);
    tt.match(await ask(), expected, mode);
  }
  responder.setMode('slow', { delayMs: 50 });
  tt.match(await ask(), { ok: true }, 'slow still answers');
  responder.setMode('down');
  await tt.rejects(fetch(responder.url, { method: 'POST', body: encodeOcspRequest(f.id, null) }), 'down: the connection is cut');
  tt.equal(responder.requests, 14);

  // A slow answer still pending at close() does not keep the process alive or throw.
  responder.setMode('slow', { delayMs: 60_000 });
  const pending = fetch(responder.url, { method: 'POST', body: encodeOcspRequest(f.id, null) }).catch((err: Error) => err);
  while (responder.requests < 15) await new Promise((r) => setImmediate(r));
  await responder.close();
  tt.type(await pending, Error, 'pending request cut by close()');
});

t.test('verify-signature: certificates are checked with the same algorithm list as CRLs and responses', async (tt) => {
  const leaf = await issueLeafWithOcsp(ec.ca, { ocspUrls: [] });
  tt.same(verifyCertificateSignature(leaf.der, ec.caNode), { ok: true }, 'X509Certificate key');
  tt.same(verifyCertificateSignature(leaf.der, ec.caNode.publicKey), { ok: true }, 'KeyObject');
  tt.match(verifyCertificateSignature(leaf.der, new X509Certificate(ec.leafDer)), { ok: false, reason: /does not verify with the issuer key/ });
  tt.match(verifyCertificateSignature(leaf.der, rsa.caNode), { ok: false, reason: /issuer key is rsa/ });
  tt.match(verifyCertificateSignature(leaf.der.subarray(0, 40), ec.caNode), { ok: false, reason: /certificate malformed/ });
  tt.match(verifyCertificateSignature(Buffer.concat([leaf.der, Buffer.from([5, 0])]), ec.caNode), { ok: false, reason: /certificate malformed/ });

  const parts = readSignedParts(leaf.der, 0, leaf.der.length);
  tt.equal(parts.sigAlgOid, '1.2.840.10045.4.3.2');
  tt.equal(parts.sigAlgParams, null, 'ECDSA has no parameters');
  tt.same(verifySignedData(parts.tbs, parts.sigAlgOid, null, parts.signature, ec.caNode), { ok: true });
  tt.match(verifySignedData(parts.tbs, '1.2.840.10045.4.1', null, parts.signature, ec.caNode), { ok: false, reason: /unsupported signature algorithm/ }, 'ecdsa-with-SHA1');
  tt.match(verifySignedData(parts.tbs, '1.2.840.113549.1.1.5', null, parts.signature, rsa.caNode), { ok: false, reason: /unsupported/ }, 'sha1WithRSA');
  const rsaLeaf = await issueLeafWithOcsp(rsa.ca, { ocspUrls: [] });
  const rsaParts = readSignedParts(rsaLeaf.der, 0, rsaLeaf.der.length);
  tt.same(rsaParts.sigAlgParams, Buffer.from([0x05, 0x00]), 'RSA carries NULL parameters');
  tt.same(verifySignedData(rsaParts.tbs, rsaParts.sigAlgOid, rsaParts.sigAlgParams, rsaParts.signature, rsa.caNode, 'responder key'), { ok: true });
  tt.match(verifySignedData(rsaParts.tbs, rsaParts.sigAlgOid, null, Buffer.from('short'), rsa.caNode, 'responder key'), { ok: false, reason: /responder key|failed/ });
});
