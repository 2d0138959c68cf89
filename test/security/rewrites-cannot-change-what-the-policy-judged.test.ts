// Pins a security decision: a route's rewrite.prefix runs after the policy decision, on the path
// the policy judged, and can never turn an allowed request into one for a path the policy denies.
// The whole path-trick corpus (dot segments, escaped separators, double encoding, ";params",
// case, overlong UTF-8...) is sent byte for byte by an allowed client to a gateway where
// /orders/admin admits nobody and /orders admits billing with `rewrite: { prefix: /v1/orders }`.
// Whatever reaches the upstream must be exactly the judged path with its /orders prefix replaced
// (nothing else rewritten, nothing re-decoded), never under /v1/orders/admin in any spelling, and
// always canonical; every answer is a documented one and the process survives every case.
import t from 'tap';
import { judgeExchange } from '../helpers/documented-answer.js';
import { startFleet, startTarget } from '../helpers/fleet.js';
import { makeTestPki } from '../helpers/harness.js';
import { loadPathCorpus } from '../helpers/path-corpus.js';
import { distinctFaults, guardProcess, mapLimit } from '../helpers/process-guard.js';
import { rawTlsExchange, show } from '../helpers/raw-tls-request.js';
import { normalizeTarget } from '../../src/request/normalize-path.js';

const ROUTES = `
routes:
  - name: orders-admin
    match: { pathPrefix: /orders/admin }
    upstream: orders
    allow: []
  - name: orders
    match: { pathPrefix: /orders }
    upstream: orders
    rewrite: { prefix: /v1/orders }
    allow:
      - spiffe: spiffe://example.org/ns/default/sa/billing
`;

const corpus = loadPathCorpus();

for (const caseSensitive of [true, false]) {
t.test(`the path-trick corpus against a rewriting route (paths.caseSensitive: ${caseSensitive})`, async (t) => {
  t.ok(corpus.length >= 200, `the corpus holds ${corpus.length} targets`);
  // Case-sensitive routes treat /orders/ADMIN as another resource than /orders/admin (allowed);
  // with caseSensitive false, for a case-folding upstream, every spelling is the denied route.
  const flags = caseSensitive ? '' : 'i';
  const deniedJudged = new RegExp('^/orders/admin(/|$)', flags);
  const deniedSent = new RegExp('^/v1/orders/admin(/|$)', flags);
  const guard = guardProcess();
  t.teardown(() => guard.dispose());
  const pki = await makeTestPki();
  const seen = new Map<string, string>();
  const target = await startTarget(pki, {
    handler: (req, res) => {
      const id = req.headers['x-fuzz-case'];
      if (typeof id === 'string') seen.set(id, req.url ?? '');
      req.resume();
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' }).end(JSON.stringify({ url: req.url }));
    },
  });
  const f = await startFleet({ pki, count: 1, targets: [target], routes: ROUTES, extra: `server:\n  paths: { caseSensitive: ${caseSensitive} }\n` });
  t.teardown(() => f.close());

  const billing = pki.clients['billing']!;
  const answers = new Map<number, ReturnType<typeof judgeExchange>>();
  guard.during('rewrite corpus');
  await mapLimit(corpus, 6, async (entry, index) => {
    const payload = Buffer.concat([Buffer.from('GET ', 'latin1'), entry.bytes, Buffer.from(` HTTP/1.1\r\nHost: localhost\r\nX-Fuzz-Case: c${index}\r\n\r\n`, 'latin1')]);
    const x = await rawTlsExchange({ port: f.gw.port, ca: pki.root.certPem, cert: billing.chainPem, key: billing.keyPem, payload, expectResponses: 1, timeoutMs: 4_000 });
    answers.set(index, judgeExchange(x, { validClient: true }));
  });
  await new Promise((r) => setTimeout(r, 100));

  let forwarded = 0;
  for (const [index, entry] of corpus.entries()) {
    const problems = [...(answers.get(index)?.problems ?? ['no exchange'])];
    const got = seen.get(`c${index}`);
    if (got !== undefined) {
      forwarded++;
      const judged = normalizeTarget(entry.bytes.toString('latin1'));
      if (!judged.ok) problems.push(`forwarded ${got} although the gateway's normalizer refuses the target (${judged.reason})`);
      else {
        const want = `/v1/orders${judged.path.slice('/orders'.length)}${judged.query}`;
        if (got !== want) problems.push(`upstream got ${got}, expected the judged path rewritten: ${want}`);
        if (deniedJudged.test(judged.path)) problems.push(`judged path ${judged.path} is under the denied route`);
      }
      const pathOnly = got.split('?')[0]!;
      if (deniedSent.test(pathOnly)) problems.push(`upstream reached the denied subtree: ${got}`);
      if (/\/\.{1,2}(\/|$)|\/\/|%2e|%2f|%5c|;|\\/i.test(pathOnly)) problems.push(`upstream path is not canonical: ${got}`);
      if (!new RegExp('^/v1/orders(/|$)', flags).test(pathOnly)) problems.push(`upstream path escaped the rewrite base: ${got}`);
    }
    t.strictSame(problems, [], `line ${entry.line} ${show(entry.bytes, 100)}`);
  }
  t.ok(forwarded >= 10, `some corpus targets are legitimate and were forwarded (${forwarded})`);
  t.equal((await f.send(f.billing, { path: '/orders/42?x=1' })).status, 200, 'a plain request still works');
  t.equal(seen.size >= forwarded, true);
  t.strictSame(distinctFaults(guard.faults), [], 'the gateway raised no uncaught exception or unhandled rejection');
});
}
