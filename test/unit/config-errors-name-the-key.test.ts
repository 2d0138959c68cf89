// Config errors name the key path they concern; the minimal config from the issue is accepted as
// written; unknown keys are errors; durations parse one way everywhere.
import t from 'tap';
import { parse } from 'yaml';
import { parseConfigText } from '../../src/config/load-config.js';
import { configIssuesOf } from '../helpers/config-issues.js';
import { parseDuration } from '../../src/config/duration.js';

const MINIMAL = `
listen: { host: 127.0.0.1, port: 8443 }
tls:
  cert: ./certs/gateway.crt          # server certificate (chain allowed)
  key: ./certs/gateway.key
  clientCA: ./certs/ca-bundle.pem    # trusted roots and intermediates for client certificates
  crl: [./certs/root.crl.pem, ./certs/intermediate.crl.pem]   # optional here; see the revocation issue
upstreams:
  orders:
    url: https://127.0.0.1:9443
    tls:
      cert: ./certs/gateway-client.crt   # the gateway's own client certificate
      key: ./certs/gateway-client.key
      ca: ./certs/ca-bundle.pem          # trust for the upstream's server certificate
      servername: orders.internal        # SNI and the name the upstream certificate must carry
routes:
  - name: orders
    match: { pathPrefix: /orders, methods: [GET, POST] }
    upstream: orders
    allow:
      - spiffe: spiffe://example.org/ns/*/sa/billing
      - subject: { CN: ops-admin, OU: sre }
`;


t.test('the minimal config from the issue is accepted, paths resolve against the file', async (t) => {
  const cfg = parseConfigText(MINIMAL, '/etc/gw/gateway.yaml');
  t.equal(cfg.tls.cert, '/etc/gw/certs/gateway.crt');
  t.same(cfg.tls.crl, ['/etc/gw/certs/root.crl.pem', '/etc/gw/certs/intermediate.crl.pem']);
  t.equal(cfg.upstreams['orders']!.tls.ca, '/etc/gw/certs/ca-bundle.pem');
  t.equal(cfg.upstreams['orders']!.timeouts.connect, 5000, 'safe default connect timeout');
  t.equal(cfg.upstreams['orders']!.timeouts.response, 30000, 'safe default response timeout');
  t.same(cfg.routes[0]!.match.methods, ['GET', 'POST']);
  t.same(cfg.routes[0]!.deny, []);
});

t.test('JSON is accepted too', async (t) => {
  const json = JSON.stringify(parse(MINIMAL));
  t.same(parseConfigText(json, '/x/g.json'), parseConfigText(MINIMAL, '/x/g.yaml'));
});

t.test('errors name their key path', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    ['unknown key in tls', MINIMAL.replace('clientCA:', 'clientCa:'), /^tls$/],
    ['typo at top level', MINIMAL + '\nroutez: []\n', /^$/],
    ['route upstream unknown', MINIMAL.replace('upstream: orders', 'upstream: order'), /^routes\[0\]\.upstream$/],
    ['bad duration', MINIMAL.replace('servername: orders.internal', 'servername: orders.internal\n    timeouts: { connect: 5 }'), /^upstreams\.orders\.timeouts\.connect$/],
    ['empty selector', MINIMAL.replace('- spiffe: spiffe://example.org/ns/*/sa/billing', '- {}'), /^routes\[0\]\.allow\[0\]$/],
    ['unknown selector field', MINIMAL.replace('- spiffe: spiffe://', '- spife: spiffe://'), /^routes\[0\]\.allow\[0\]$/],
    ['http upstream refused', MINIMAL.replace('https://127.0.0.1:9443', 'http://127.0.0.1:9443'), /^upstreams\.orders\.url$/],
    ['both path and pathPrefix', MINIMAL.replace('pathPrefix: /orders,', 'pathPrefix: /orders, path: /x,'), /^routes\[0\]\.match$/],
    ['port out of range', MINIMAL.replace('port: 8443', 'port: 70000'), /^listen\.port$/],
    ['missing tls.key', MINIMAL.replace('  key: ./certs/gateway.key\n', ''), /^tls\.key$/],
  ];
  for (const [name, text, pathRe] of cases) {
    const issues = configIssuesOf(text);
    t.ok(issues.length > 0, `${name}: refused`);
    t.ok(issues.some((i) => pathRe.test(i.path)), `${name}: names the key (got ${JSON.stringify(issues)})`);
  }
  const unknown = configIssuesOf(MINIMAL.replace('clientCA:', 'clientCa:'));
  t.match(unknown.find((i) => i.path === 'tls')?.message, /unknown key "clientCa"/);
});

t.test('a bad policy rule fails at load, naming the key', async (t) => {
  const { compilePolicy } = await import('../../src/policy/compile-policy.js');
  const cfg = parseConfigText(MINIMAL.replace('spiffe: spiffe://example.org/ns/*/sa/billing', 'spiffe: spiffe://example.org/ns/a**b'), '/x/g.yaml');
  let issues: unknown = null;
  try {
    compilePolicy(cfg.routes);
  } catch (err) {
    issues = (err as { issues?: unknown }).issues;
  }
  t.match(issues, [{ path: 'routes[0].allow[0].spiffe', message: String }]);
});

t.test('durations', async (t) => {
  t.equal(parseDuration('250ms'), 250);
  t.equal(parseDuration('5s'), 5000);
  t.equal(parseDuration('1m30s'), 90000);
  t.equal(parseDuration('2h'), 7_200_000);
  t.equal(parseDuration('30'), null, 'bare numbers are ambiguous');
  t.equal(parseDuration('5 s'), null);
  t.equal(parseDuration(''), null);
});
