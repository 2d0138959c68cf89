// The admin listener reports what the gateway is doing: /healthz, /readyz, /metrics and /status
// read the gateway in force, and POST /reload swaps in a new generation that all of them show.
// Real TLS on the data plane (a PKI generated for this run), plain HTTP on the admin port.
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import t from 'tap';
import { adminRequest, type AdminResponse } from '../helpers/admin-client.js';
import { AdminServer } from '../../src/admin/admin-server.js';
import { gatewayAdminBackend } from '../../src/admin/gateway-backend.js';
import { startStack } from '../helpers/harness.js';

const admin = (port: number, method: string, path: string) => adminRequest(port, method, path);

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition (comments skipped, label values unescaped). */
function parseExposition(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`not an exposition line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

/** The samples of `name` whose labels include `labels`. */
function select(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): Sample[] {
  return samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

function valueOf(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = select(samples, name, labels);
  return found.length === 1 ? found[0]!.value : undefined;
}

async function scrape(port: number): Promise<{ res: AdminResponse; samples: Sample[] }> {
  const res = await admin(port, 'GET', '/metrics');
  return { res, samples: parseExposition(res.body) };
}

const silent = pino({ level: 'silent' });

t.test('health, readiness, metrics, status and reload on the admin listener', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  const adminServer = new AdminServer({ host: '127.0.0.1', port: 0, backend: gatewayAdminBackend(s.gw.gateway), logger: silent });
  const { port } = (await adminServer.listen()) as AddressInfo;
  t.teardown(() => adminServer.close());

  t.test('/healthz answers 200 {status: ok}', async (t) => {
    const res = await admin(port, 'GET', '/healthz');
    t.equal(res.status, 200, '/healthz is 200');
    t.match(res.headers['content-type'], /^application\/json/, 'JSON');
    t.same(res.json, { status: 'ok' }, 'the health document');
  });

  t.test('/readyz answers 200 with no reasons while serving', async (t) => {
    const res = await admin(port, 'GET', '/readyz');
    t.equal(res.status, 200, '/readyz is 200');
    t.same(res.json, { ready: true, reasons: [] }, 'ready, no reasons');
  });

  t.test('data-plane traffic: allowed, denied, unknown route, no certificate', async (t) => {
    t.equal((await s.send(s.pki.clients['billing']!, { path: '/orders/1' })).status, 200, 'billing GET /orders/1 is allowed');
    t.equal((await s.send(s.pki.clients['intruder']!, { path: '/orders/1' })).status, 403, 'intruder is denied');
    t.equal((await s.send(s.pki.clients['billing']!, { path: '/nowhere' })).status, 404, 'an unknown route is 404');
    const anonymous = await s.send(null, { path: '/orders/1' });
    t.equal(anonymous.status, 401, 'a connection without a client certificate is 401');
    t.match(anonymous.json, { error: { code: 'GW_ERR_CLIENT_CERT_MISSING' } }, 'GW_ERR_CLIENT_CERT_MISSING');
  });

  t.test('/metrics counts that traffic and reads the state in force', async (t) => {
    const { res, samples } = await scrape(port);
    t.equal(res.status, 200, '/metrics is 200');
    t.equal(res.headers['content-type'], s.gw.gateway.metrics.contentType, "prom-client's content type");
    t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/, 'the text exposition format');

    const requests = 'mtls_gateway_requests_total';
    t.equal(valueOf(samples, requests, { route: 'orders', decision: 'allow', status: '200' }), 1, 'one allowed request on orders');
    t.equal(valueOf(samples, requests, { route: 'orders', decision: 'deny', status: '403' }), 1, 'one denied request on orders');
    t.equal(select(samples, requests, { decision: 'no-route', status: '404' }).reduce((n, x) => n + x.value, 0), 1, 'one request that matched no route');
    t.equal(valueOf(samples, requests, { route: '', decision: 'no-route', status: '404' }), 1, 'a request without a route is counted under route=""');
    t.equal(valueOf(samples, requests, { route: '', decision: 'refused', status: '401' }), 1, 'the request without a certificate is counted as refused 401');

    const buckets = select(samples, 'mtls_gateway_request_duration_seconds_bucket', { route: 'orders' });
    t.ok(buckets.length > 0, 'duration histogram buckets for orders');
    t.equal(valueOf(samples, 'mtls_gateway_request_duration_seconds_bucket', { route: 'orders', le: '+Inf' }), 2, 'both orders requests observed');
    t.equal(valueOf(samples, 'mtls_gateway_request_duration_seconds_count', { route: 'orders' }), 2, 'histogram count for orders');
    t.ok((valueOf(samples, 'mtls_gateway_request_duration_seconds_sum', { route: 'orders' }) ?? -1) >= 0, 'a duration sum');

    const missing = valueOf(samples, 'mtls_gateway_client_cert_rejections_total', { code: 'GW_ERR_CLIENT_CERT_MISSING' });
    t.ok(missing !== undefined && missing >= 1, `the connection without a certificate is counted as a rejection (got ${missing})`);
    t.equal(missing, 1, 'counted once: at the handshake, not again for its request');

    const open = valueOf(samples, 'mtls_gateway_connections_open');
    t.ok(open !== undefined && Number.isInteger(open) && open >= 0, `mtls_gateway_connections_open is a count (got ${open})`);

    const expiry = 'mtls_gateway_certificate_expiration_timestamp_seconds';
    const server = select(samples, expiry, { role: 'server' });
    t.equal(server.length, 1, 'one server certificate');
    t.equal(server[0]?.value, Math.floor(s.pki.gatewayServer.cert.notAfter.getTime() / 1000), "the server certificate's notAfter in Unix seconds");
    for (const role of ['client-ca', 'upstream-client', 'upstream-ca']) t.ok(select(samples, expiry, { role }).length > 0, `a ${role} certificate is listed`);
    t.equal(valueOf(samples, expiry, { role: 'upstream-client' }), Math.floor(s.pki.gatewayClient.cert.notAfter.getTime() / 1000), "the upstream client certificate's notAfter");

    const nextUpdate = select(samples, 'mtls_gateway_crl_next_update_timestamp_seconds', { domain: 'clients' });
    const entries = select(samples, 'mtls_gateway_crl_entries', { domain: 'clients' });
    t.ok(nextUpdate.length >= 1, 'nextUpdate of the client CRLs');
    t.ok(entries.length >= 1, 'entries of the client CRLs');
    t.ok(entries.reduce((n, x) => n + x.value, 0) >= 1, 'the revoked client is listed in a client CRL');
    for (const n of nextUpdate) t.ok(n.value * 1000 > Date.now(), `the CRL of ${n.labels['issuer']} is fresh`);

    t.equal(valueOf(samples, 'mtls_gateway_config_generation'), 1, 'generation 1 at start');
    t.equal(valueOf(samples, 'mtls_gateway_config_reloads_total', { result: 'success' }), 0, 'no reload yet');
    t.equal(valueOf(samples, 'mtls_gateway_config_reloads_total', { result: 'failure' }), 0, 'no failed reload');
    t.equal(valueOf(samples, 'mtls_gateway_ready'), 1, 'ready');
  });

  t.test('/status describes what is in force, consistent with /metrics', async (t) => {
    const res = await admin(port, 'GET', '/status');
    t.equal(res.status, 200, '/status is 200');
    t.match(res.headers['content-type'], /^application\/json/, 'JSON');
    const st = res.json as {
      generation: number;
      loadedAt: string;
      lastReload: unknown;
      certificates: Array<{ role: string; subject: string; serial: string; notAfter: string }>;
      crls: Array<{ domain: string; issuer: string; number: string | null; thisUpdate: string; nextUpdate: string | null; entries: number; source: string; stale: boolean }>;
      routes: Array<{ name: string; upstream: string }>;
      upstreams: Array<{ name: string; url: string }>;
    };
    t.equal(st.generation, 1, 'generation 1');
    t.match(st.loadedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'loadedAt is an ISO timestamp');
    t.equal(new Date(st.loadedAt).toISOString(), st.loadedAt, 'loadedAt round-trips as a date');
    t.equal(st.lastReload, null, 'no reload yet');

    t.ok(Array.isArray(st.certificates) && st.certificates.length >= 4, 'certificates are listed');
    for (const c of st.certificates) t.match(c, { role: String, subject: String, serial: /^[0-9A-F]+$/, notAfter: /Z$/ }, `certificate ${c.role} ${c.subject}`);
    t.same([...new Set(st.certificates.map((c) => c.role))].sort(), ['client-ca', 'server', 'upstream-ca', 'upstream-client'], 'every certificate role');
    const server = st.certificates.find((c) => c.role === 'server');
    t.equal(server?.notAfter, new Date(Math.floor(s.pki.gatewayServer.cert.notAfter.getTime() / 1000) * 1000).toISOString(), 'server notAfter');
    t.equal(server?.serial.replace(/^0+/, ''), s.pki.gatewayServer.cert.serialNumber.toUpperCase().replace(/^0+/, ''), 'server serial');

    t.ok(Array.isArray(st.crls) && st.crls.length >= 1, 'CRLs are listed');
    for (const c of st.crls) {
      t.match(c, { domain: 'clients', issuer: String, thisUpdate: String, entries: Number, source: String, stale: false }, `CRL of ${c.issuer}`);
      t.ok('number' in c && 'nextUpdate' in c, `CRL of ${c.issuer} has number and nextUpdate`);
    }

    // The scrape reads the same CRLs and certificates.
    const { samples } = await scrape(port);
    for (const c of st.crls) {
      t.equal(valueOf(samples, 'mtls_gateway_crl_entries', { domain: c.domain, issuer: c.issuer }), c.entries, `crl_entries of ${c.issuer} matches /status`);
      if (c.nextUpdate !== null) t.equal(valueOf(samples, 'mtls_gateway_crl_next_update_timestamp_seconds', { domain: c.domain, issuer: c.issuer }), Math.floor(Date.parse(c.nextUpdate) / 1000), `nextUpdate of ${c.issuer} matches /status`);
    }
    for (const c of st.certificates) {
      t.equal(valueOf(samples, 'mtls_gateway_certificate_expiration_timestamp_seconds', { role: c.role, subject: c.subject, serial: c.serial }), Date.parse(c.notAfter) / 1000, `expiration of ${c.role} ${c.subject} matches /status`);
    }

    t.same(st.routes.map((r) => r.name), ['orders', 'admin'], 'routes');
    t.match(st.routes[0], { name: 'orders', upstream: 'orders' }, 'route orders goes to upstream orders');
    t.same(st.upstreams.map((u) => u.name), ['orders'], 'upstreams');
    t.match(st.upstreams[0], { name: 'orders', url: `https://127.0.0.1:${s.upstream.port}` }, 'upstream orders and its URL');
  });

  t.test('POST /reload swaps in generation 2, and /status and /metrics show it', async (t) => {
    const res = await admin(port, 'POST', '/reload');
    t.equal(res.status, 200, 'POST /reload is 200');
    t.same(res.json, { result: 'success', generation: 2 }, 'success, generation 2');

    const st = (await admin(port, 'GET', '/status')).json as { generation: number; lastReload: { result: string; generation: number; trigger: string; at: string } | null };
    t.equal(st.generation, 2, '/status generation 2');
    t.match(st.lastReload, { result: 'success', generation: 2, trigger: 'admin', at: String }, '/status lastReload');

    const { samples } = await scrape(port);
    t.equal(valueOf(samples, 'mtls_gateway_config_reloads_total', { result: 'success' }), 1, 'one successful reload counted');
    t.equal(valueOf(samples, 'mtls_gateway_config_reloads_total', { result: 'failure' }), 0, 'no failed reload counted');
    t.equal(valueOf(samples, 'mtls_gateway_config_generation'), 2, 'mtls_gateway_config_generation 2');
    t.equal(valueOf(samples, 'mtls_gateway_ready'), 1, 'still ready after the reload');
    t.equal((await s.send(s.pki.clients['billing']!, { path: '/orders/1' })).status, 200, 'the data plane serves on generation 2');
  });
});

t.test('/readyz turns 503 as soon as a drain starts, while /healthz stays 200', async (t) => {
  const s = await startStack({ extra: 'server: { drainDelay: 1s, drainTimeout: 2s }' });
  t.teardown(() => s.close());
  const adminServer = new AdminServer({ host: '127.0.0.1', port: 0, backend: gatewayAdminBackend(s.gw.gateway), logger: silent });
  const { port } = (await adminServer.listen()) as AddressInfo;
  t.teardown(() => adminServer.close());

  t.equal((await admin(port, 'GET', '/readyz')).status, 200, 'ready before the drain');
  const started = Date.now();
  const drained = s.gw.gateway.drain('test');
  const during = await admin(port, 'GET', '/readyz');
  const elapsed = Date.now() - started;
  t.ok(elapsed < 1000, `checked within the drain delay (${elapsed} ms)`);
  t.equal(during.status, 503, 'not ready while draining');
  t.match(during.json, { ready: false, reasons: [/draining/] }, 'the reason names the drain');
  t.equal((await admin(port, 'GET', '/healthz')).status, 200, 'alive while draining');
  const { samples } = await scrape(port);
  t.equal(valueOf(samples, 'mtls_gateway_ready'), 0, 'mtls_gateway_ready is 0 while draining');
  t.equal((await s.send(s.pki.clients['billing']!, { path: '/orders/1' })).status, 200, 'the data plane still serves during the drain delay');
  await drained;
  const after = await admin(port, 'GET', '/readyz');
  t.equal(after.status, 503, 'not ready once drained');
  t.match(after.json, { ready: false, reasons: [/draining/, /listener/] }, 'draining, and the listener is closed');
});
