// Scenario: what OCSP costs a full handshake once its answer is cached (issue 13's target: within
// 5% of no revocation at all). Three gateways run at the same time and are measured interleaved:
// no revocation, the PKI's CRLs (the default bench gateway's setting), and OCSP alone
// (tls.ocsp.mode: prefer, the client's issuer mapped to a local responder). The responder serves
// one answer made by `openssl ocsp` for the bench client, valid for a day, so the gateway asks it
// once and then answers every handshake from its cache; the responder's request count is recorded
// to show it. Full handshakes, then keep-alive GET.
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { createServer } from 'node:http';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { interleaved } from '../lib/measure.mjs';

export const id = 'ocsp';
export const title = 'OCSP answer cached against no revocation and against CRLs';

/** openssl index.txt time: YYMMDDHHMMSSZ. */
function indexTime(d) {
  return d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
}

/** One signed "good" answer for the bench client, from openssl's own responder code. */
function makeAnswer(ctx, dir) {
  const p = ctx.pki;
  const client = new X509Certificate(readFileSync(p.clientCert));
  const index = join(dir, 'index.txt');
  writeFileSync(index, `V\t${indexTime(new Date(client.validTo))}\t\t${client.serialNumber.toUpperCase()}\tunknown\t/CN=bench\n`);
  const req = join(dir, 'req.der');
  const resp = join(dir, 'resp.der');
  execFileSync('openssl', ['ocsp', '-issuer', p.intermediateCert, '-cert', p.clientCert, '-no_nonce', '-reqout', req], { stdio: 'ignore' });
  execFileSync('openssl', ['ocsp', '-index', index, '-rsigner', p.intermediateCert, '-rkey', p.intermediateKey, '-CA', p.intermediateCert, '-reqin', req, '-respout', resp, '-ndays', '1'], { stdio: 'ignore' });
  return readFileSync(resp);
}

export async function run(ctx) {
  const dir = join(ctx.workDir, 'ocsp');
  mkdirSync(dir, { recursive: true });
  const answer = makeAnswer(ctx, dir);
  let requests = 0;
  const responder = createServer((req, res) => {
    requests++;
    req.resume();
    res.writeHead(200, { 'content-type': 'application/ocsp-response', 'content-length': answer.length });
    res.end(answer);
  });
  await new Promise((r) => responder.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${responder.address().port}`;
  const issuerCn = /CN=([^\n]+)/.exec(new X509Certificate(readFileSync(ctx.pki.intermediateCert)).subject)?.[1];
  const variants = [
    { name: 'gateway-norev', crl: 'none' },
    { name: 'gateway-crl', crl: 'small' },
    { name: 'gateway-ocsp', crl: 'none', tlsExtra: `  ocsp:\n    mode: prefer\n    responders: [{ issuer: { CN: ${JSON.stringify(issuerCn)} }, url: ${JSON.stringify(url)} }]\n` },
  ];
  try {
    for (const v of variants) await ctx.targets.startGateway(v.name, { crl: v.crl, ...(v.tlsExtra ? { tlsExtra: v.tlsExtra } : {}) });
    const names = variants.map((v) => v.name);
    const rounds = Math.min(ctx.opts.rounds, 3);
    await interleaved(ctx, { scenario: id, label: 'revocation: full handshake per request', targets: names, spec: { kind: 'hs', path: '/', method: 'GET', conns: ctx.opts.conns, servername: 'localhost' }, rounds });
    const ka = { kind: 'ka', tool: 'node', preconnect: true, path: '/', method: 'GET', conns: ctx.opts.conns, servername: 'localhost' };
    await interleaved(ctx, { scenario: id, label: 'revocation: keep-alive GET 100 B', targets: names, spec: ka, rounds });
  } finally {
    for (const v of variants) await ctx.targets.stop(v.name);
    await new Promise((r) => responder.close(r));
  }
  ctx.extra.ocsp = { responderRequests: requests };
  ctx.notes.push(`ocsp: the responder was asked ${requests} time(s) during the run (the gateway's cache answered every other handshake)`);
}
