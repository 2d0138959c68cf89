// Zero failed requests: under continuous load (keep-alive clients and a client that makes a new
// TLS connection per request), rotating the server certificate, adding a client CA, changing a
// route's policy, rotating the upstream client certificate and replacing a CRL must not fail or
// reset a single request that the new state allows. Every answer is counted; bounded to about
// 16 s of load on loopback. The measured cost of each reload is logged by the gateway (`reload`
// records carry durationMs) and printed here as a comment.
import { writeFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { createCrl, createRootCa, issueLeaf, type Issued } from '../../src/pki/dev-pki.js';
import { replaceFile } from '../helpers/crl-files.js';
import { gatewayYaml, request, startStack } from '../helpers/harness.js';

const LOAD_MS = 16_000;

const ROUTES_WITH_EXTRA_RULE = `
routes:
  - name: orders
    match: { pathPrefix: /orders, methods: [GET, POST, PUT] }
    upstream: orders
    deny:
      - subject: { CN: intruder }
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
      - subject: { CN: ops-admin, OU: sre }
      - subject: { CN: partner }
`;

t.test('reloads under load fail no request the new state allows', async (t) => {
  t.setTimeout(120_000);
  const s = await startStack();
  t.teardown(() => s.close());
  const { pki, dir } = s;
  const ca = pki.root.certPem;
  const billing = pki.clients['billing']!;
  const outcomes = new Map<string, number>();
  const failures: string[] = [];
  const count = (what: string) => outcomes.set(what, (outcomes.get(what) ?? 0) + 1);
  const t0 = Date.now();
  const at = () => `+${Date.now() - t0} ms`;
  const reloadsAt: string[] = [];
  let stop = false;

  const keepAliveClient = async (id: number, client: Issued, fromMs = 0) => {
    await sleep(fromMs);
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca, cert: client.chainPem, key: client.keyPem });
    try {
      for (let i = 0; !stop; i++) {
        try {
          const r = await request(s.gw.port, null, ca, { path: `/orders/${id}-${i}`, agent });
          count(`status ${r.status}`);
          if (r.status !== 200) failures.push(`${at()} client ${id} request ${i}: ${r.status} ${r.body.slice(0, 200)}`);
        } catch (err) {
          count('error');
          failures.push(`${at()} client ${id} request ${i}: ${(err as Error).message}`);
        }
      }
    } finally {
      agent.destroy();
    }
  };
  const newConnectionClient = async (id: number) => {
    for (let i = 0; !stop; i++) {
      try {
        const r = await s.send(billing, { path: `/orders/new-${id}-${i}`, method: i % 3 === 0 ? 'POST' : 'GET', ...(i % 3 === 0 ? { body: 'x'.repeat(10_000) } : {}) });
        count(`status ${r.status}`);
        if (r.status !== 200) failures.push(`${at()} new-connection client ${id} request ${i}: ${r.status} ${r.body.slice(0, 200)}`);
      } catch (err) {
        count('error');
        failures.push(`${at()} new-connection client ${id} request ${i}: ${(err as Error).message}`);
      }
    }
  };

  const partnerRoot = await createRootCa({ name: 'partner-root', subject: { CN: 'Partner Root CA', O: 'Partner' } });
  const [partner, serverRotated, upstreamClientRotated, partnerCrl, newIntermediateCrl] = await Promise.all([
    issueLeaf(partnerRoot, { name: 'partner', subject: { CN: 'partner' }, usage: 'client' }),
    issueLeaf(pki.intermediate, { name: 'gateway-rotated', subject: { CN: 'gateway-rotated' }, dns: ['localhost'], ips: ['127.0.0.1'], usage: 'server' }),
    issueLeaf(pki.intermediate, { name: 'gateway-client-rotated', subject: { CN: 'gateway-client-rotated' }, usage: 'client' }),
    createCrl(partnerRoot),
    createCrl(pki.intermediate, { crlNumber: 2, revoked: [{ serial: pki.clients['revoked']!.serial, reason: 'keyCompromise' }, { serial: '0ABCDEF1' }] }),
  ]);
  const crlYaml = '  crl: [./root.crl.pem, ./intermediate.crl.pem, ./partner.crl.pem]';

  const load = Promise.all([
    keepAliveClient(1, billing),
    keepAliveClient(2, billing),
    keepAliveClient(3, pki.clients['ops-admin'] ?? billing),
    newConnectionClient(4),
    newConnectionClient(5),
  ]);

  const generations: number[] = [];
  const reload = async (what: string) => {
    reloadsAt.push(`${what} ${at()}`);
    const r = await s.gw.gateway.reload(what);
    if (r.result !== 'success') failures.push(`reload "${what}" failed: ${JSON.stringify(r.error)}`);
    generations.push(r.generation);
  };
  const step = (ms: number) => sleep(ms);

  await step(1_500);
  await writeFile(path.join(dir, 'gateway.crt'), serverRotated.chainPem);
  await writeFile(path.join(dir, 'gateway.key'), serverRotated.keyPem);
  await reload('rotate-server-certificate');

  await step(2_500);
  await writeFile(path.join(dir, 'partner.crl.pem'), partnerCrl.pem);
  await writeFile(path.join(dir, 'ca-bundle.pem'), pki.caBundlePem + partnerRoot.certPem);
  await writeFile(path.join(dir, 'gateway.yaml'), gatewayYaml({ upstreamPort: s.upstream.port, crlYaml }));
  await reload('add-client-ca');

  await step(2_500);
  await writeFile(path.join(dir, 'gateway.yaml'), gatewayYaml({ upstreamPort: s.upstream.port, crlYaml, routes: ROUTES_WITH_EXTRA_RULE }));
  await reload('change-route-policy');
  // The partner's client is allowed from now on and joins the load.
  const partnerLoad = keepAliveClient(6, partner);

  await step(2_500);
  await writeFile(path.join(dir, 'gateway-client.crt'), upstreamClientRotated.chainPem);
  await writeFile(path.join(dir, 'gateway-client.key'), upstreamClientRotated.keyPem);
  await reload('rotate-upstream-client-certificate');

  await step(2_500);
  await replaceFile(path.join(dir, 'intermediate.crl.pem'), newIntermediateCrl.pem);
  await reload('replace-crl');

  await step(Math.max(0, LOAD_MS - 11_500));
  stop = true;
  await Promise.all([load, partnerLoad]);

  const answered = [...outcomes.entries()].map(([k, v]) => `${k}: ${v}`).join(', ');
  const durations = s.gw.logs.filter((l) => l['event'] === 'reload').map((l) => `${String(l['trigger'])} ${Number(l['durationMs']).toFixed(0)} ms`);
  t.comment(`answers: ${answered}; reload durations: ${durations.join(', ')}`);
  // A failure is rare (one of ~4,400 answers, once in CI under server.engine: lean): print what
  // the next occurrence needs to be explained: when it happened against the reloads, and the
  // gateway's own records of it (upstreamError and upstreamMessage of a 502: with the lean
  // client, whether the connection was new or reused, and how long it had idled), and the
  // connections the upstream's TLS layer dropped (how Node's TLS server refuses a certificate).
  if (failures.length > 0) {
    t.comment(`reloads at: ${reloadsAt.join(', ')} (t0 ${new Date(t0).toISOString()})`);
    t.comment(`upstream TLS errors: ${s.upstream.tlsErrors.length === 0 ? 'none' : s.upstream.tlsErrors.join('; ')}`);
    for (const l of s.gw.logs.filter((l) => Number(l['level']) >= 40 || Number(l['status']) >= 500)) t.comment(`gateway record: ${JSON.stringify(l).slice(0, 2_000)}`);
  }
  t.same(failures, [], 'no request failed or was reset');
  t.same(generations, [2, 3, 4, 5, 6], 'five reloads, five generations');
  t.ok((outcomes.get('status 200') ?? 0) > 200, `a real load was served (${outcomes.get('status 200')} answers)`);
  t.equal(s.upstream.seen.at(-1)!.peerCN, 'gateway-client-rotated', 'the upstream sees the rotated client certificate by the end');
  t.equal(s.gw.gateway.revocation.get('clients')!.describe().find((c) => /Intermediate/.test(c.issuer))?.crlNumber, '2', 'the replaced CRL is in force');
});
