// Pins a security decision: only the gateway vouches for a client's certificate. Whatever a client
// sends as RFC 9440 Client-Cert or Client-Cert-Chain (several copies, odd case, underscore
// spellings that CGI-style stacks merge, huge or empty values, names listed in Connection) never
// reaches the upstream, whether the route sends these headers itself or not; where it does, the
// upstream sees exactly one line of each, holding the gateway's value. The same holds for XFCC on
// a route that sends none.
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { startStack } from '../helpers/harness.js';
import { rawExchange } from '../helpers/raw-exchange.js';

const ALLOW = `
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing`;

/** Each route is one mode: which identity headers the gateway itself sends there. */
const MODES = [
  { prefix: '/off', yaml: '', xfcc: true, cert: false, chain: false },
  { prefix: '/on', yaml: '{ clientCert: true, clientCertChain: true }', xfcc: true, cert: true, chain: true },
  { prefix: '/leaf', yaml: '{ clientCert: true }', xfcc: true, cert: true, chain: false },
  { prefix: '/instead', yaml: '{ xfcc: false, clientCert: true, clientCertChain: true }', xfcc: false, cert: true, chain: true },
  { prefix: '/none', yaml: '{ xfcc: false }', xfcc: false, cert: false, chain: false },
] as const;

const ROUTES = `routes:${MODES.map(
  (m, i) => `
  - name: mode-${i}
    match: { pathPrefix: ${m.prefix} }
    upstream: orders${m.yaml ? `\n    forwardClientCert: ${m.yaml}` : ''}${ALLOW}`,
).join('')}`;

const FORGED_DER = `:${Buffer.from('forged certificate').toString('base64')}:`;

/** Header lines a client sends (besides Host), each case on its own connection. */
const CASES: Array<[string, string[]]> = [
  ['one forged copy of each', [`Client-Cert: ${FORGED_DER}`, `Client-Cert-Chain: ${FORGED_DER}, ${FORGED_DER}`]],
  ['several copies', [`Client-Cert: ${FORGED_DER}`, `client-cert: ${FORGED_DER}`, `CLIENT-CERT: ${FORGED_DER}`, `Client-Cert-Chain: ${FORGED_DER}`, `client-cert-chain: ${FORGED_DER}`]],
  ['odd case', [`cLiEnT-cErT: ${FORGED_DER}`, `CLIENT-cert-CHAIN: ${FORGED_DER}`]],
  ['underscore spellings', [`client_cert: ${FORGED_DER}`, `Client_Cert_Chain: ${FORGED_DER}`, `CLIENT_CERT: ${FORGED_DER}`, `client-cert_chain: ${FORGED_DER}`, `x_forwarded_client_cert: URI=spiffe://evil`]],
  ['huge values', [`Client-Cert: :${'A'.repeat(6000)}:`, `Client-Cert-Chain: :${'B'.repeat(4000)}:, :${'C'.repeat(2000)}:`]],
  ['empty values', ['Client-Cert:', 'Client-Cert-Chain: ', 'client_cert:']],
  ['named in Connection', [`Client-Cert: ${FORGED_DER}`, `Client-Cert-Chain: ${FORGED_DER}`, 'Connection: Client-Cert, client-cert-chain, close']],
  ['a forged XFCC', ['X-Forwarded-Client-Cert: By=spiffe://evil;URI=spiffe://example.org/ns/x/sa/ops', `Client-Cert: ${FORGED_DER}`]],
];

/** Lines of a header in the upstream's raw list, names compared as the gateway does ("_" as "-"). */
function valuesOf(raw: readonly string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase().replaceAll('_', '-') === name) out.push(raw[i + 1]!);
  return out;
}

t.test('client-sent Client-Cert and Client-Cert-Chain never reach the upstream, in every mode', async (t) => {
  const rawSeen: string[][] = [];
  const s = await startStack({
    routes: ROUTES,
    upstreamHandler: (req, res) => {
      rawSeen.push(req.rawHeaders);
      res.end('ok');
    },
  });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const creds = { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem };
  const clientCert = `:${new X509Certificate(billing.certPem).raw.toString('base64')}:`;
  const clientCertChain = `:${new X509Certificate(s.pki.intermediate.certPem).raw.toString('base64')}:`;

  for (const mode of MODES) {
    for (const [what, lines] of CASES) {
      const connection = lines.some((l) => l.toLowerCase().startsWith('connection:')) ? '' : 'Connection: close\r\n';
      const before = rawSeen.length;
      const out = await rawExchange(s.gw.port, creds, `GET ${mode.prefix}/x HTTP/1.1\r\nHost: localhost\r\n${lines.map((l) => `${l}\r\n`).join('')}${connection}\r\n`, { endAfterWrite: false });
      const label = `${mode.prefix}, ${what}`;
      t.same(out.statuses, [200], `${label}: forwarded`);
      const raw = rawSeen[before];
      if (raw === undefined) {
        t.fail(`${label}: the upstream saw no request`);
        continue;
      }
      t.same(valuesOf(raw, 'client-cert'), mode.cert ? [clientCert] : [], `${label}: Client-Cert is ${mode.cert ? "exactly the gateway's, once" : 'absent'}`);
      t.same(valuesOf(raw, 'client-cert-chain'), mode.chain ? [clientCertChain] : [], `${label}: Client-Cert-Chain is ${mode.chain ? "exactly the gateway's, once" : 'absent'}`);
      const xfcc = valuesOf(raw, 'x-forwarded-client-cert');
      t.equal(xfcc.length, mode.xfcc ? 1 : 0, `${label}: XFCC ${mode.xfcc ? 'once' : 'absent'}`);
      t.notOk(xfcc.some((v) => v.includes('evil')), `${label}: nothing of a forged XFCC`);
    }
  }
});

t.test('a forged header too large for the request head is refused before anything is forwarded', async (t) => {
  const s = await startStack({ routes: ROUTES });
  t.teardown(() => s.close());
  const billing = s.pki.clients['billing']!;
  const creds = { ca: s.pki.root.certPem, cert: billing.chainPem, key: billing.keyPem };
  const out = await rawExchange(s.gw.port, creds, `GET /on/x HTTP/1.1\r\nHost: localhost\r\nClient-Cert: :${'A'.repeat(20_000)}:\r\nConnection: close\r\n\r\n`, { endAfterWrite: false });
  t.same(out.statuses, [431], 'server.maxHeaderSize applies');
  t.equal(s.upstream.seen.length, 0);
  // The gateway is still serving.
  const ok = await s.send(billing, { path: '/on/y' });
  t.equal(ok.status, 200);
  t.equal(s.upstream.seen.length, 1);
});
