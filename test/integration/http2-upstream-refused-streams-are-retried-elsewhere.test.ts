// An HTTP/2 upstream that answers RST_STREAM REFUSED_STREAM has not processed the request
// (RFC 9113 8.7): `retries.on: refused-stream` (a default) sends it to another target whatever its
// method, as long as it has no body, within the attempts and the budget. A request with a body is
// not repeated; with refused-stream off, or no other target, the answer is 502 GW_ERR_UPSTREAM_RESET.
import { writeFile } from 'node:fs/promises';
import http2 from 'node:http2';
import t from 'tap';
import { fleetYaml } from '../helpers/fleet.js';
import { startH2Origin } from '../helpers/h2-origin.js';
import { makeTestPki, request, startGateway, tempDir, writePkiFiles, type TestPki } from '../helpers/harness.js';

interface H2Target {
  readonly origin: string;
  /** Streams seen, and how each was answered. */
  readonly seen: { path: string; refused: boolean }[];
  close(): Promise<void>;
}

/** An mTLS HTTP/2 target with the upstream certificate; `refuse` targets refuse every stream. */
async function startH2Target(pki: TestPki, refuse: boolean): Promise<H2Target> {
  const seen: { path: string; refused: boolean }[] = [];
  const origin = await startH2Origin(pki, (stream, headers) => {
    const path = String(headers[':path']);
    seen.push({ path, refused: refuse });
    if (refuse) return stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
    stream.resume();
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      stream.end(`served ${headers[':method']} ${path}`);
    });
  });
  return { origin: origin.origin, seen, close: () => origin.close() };
}

t.test('refused streams go to another target', async (t) => {
  const pki = await makeTestPki();
  const { dir, cleanup } = await tempDir();
  await writePkiFiles(pki, dir);
  const refusing = await startH2Target(pki, true);
  const serving = await startH2Target(pki, false);
  // Which target a request meets first is the balancer's business: every request is checked.
  const yaml = (on: string) =>
    fleetYaml({ upstream: `targets: [${refusing.origin}, ${serving.origin}]\nprotocol: http2\noutlierDetection: { enabled: false }\nretries: { on: [${on}], budget: 100% }` });
  const gw = await startGateway({ dir, yaml: yaml('connect-failure, reset, refused-stream') });
  t.teardown(async () => {
    await gw.close();
    await refusing.close();
    await serving.close();
    await cleanup();
  });
  const billing = pki.clients['billing']!;
  const send = (o: Parameters<typeof request>[3]) => request(gw.port, billing, pki.root.certPem, o);

  for (const method of ['GET', 'POST', 'DELETE']) {
    for (let i = 0; i < 4; i++) {
      const r = await send({ method, path: `/orders/${method}-${i}` });
      t.equal(r.status, 200, `${method} ${i}: served`);
      t.equal(r.body, `served ${method} /orders/${method}-${i}`);
    }
  }
  const refusedOnce = refusing.seen.length;
  t.ok(refusedOnce > 0, `the refusing target was tried (${refusedOnce} streams refused) and every refused request was retried`);
  const retried = gw.logs.filter((l) => Array.isArray(l['attempts']) && (l['attempts'] as { outcome: unknown }[]).some((a) => a.outcome === 'GW_ERR_UPSTREAM_RESET'));
  t.ok(retried.length > 0 && retried.every((l) => l['status'] === 200), 'the access records show the refused attempt and the 200');
  t.match(await gw.gateway.metrics.text(), /mtls_gateway_upstream_retries_total\{upstream="orders",reason="refused-stream"\} [1-9]/, 'counted as refused-stream retries');

  // A request with a body is not repeated: its body may be partly consumed.
  let bodyRefused = 0;
  for (let i = 0; i < 4; i++) {
    const before = refusing.seen.length;
    const r = await send({ method: 'POST', path: `/orders/body-${i}`, body: 'payload', headers: { 'content-type': 'text/plain' } });
    if (refusing.seen.length > before) {
      bodyRefused++;
      t.equal(r.status, 502, 'a refused request with a body is answered, not repeated');
      t.match(r.json, { error: { code: 'GW_ERR_UPSTREAM_RESET' } });
    } else {
      t.equal(r.status, 200);
    }
  }
  t.ok(bodyRefused > 0, 'the refusing target got a request with a body');
  t.equal(serving.seen.filter((s) => s.path.startsWith('/orders/body-')).length, 4 - bodyRefused, 'and none of the refused ones was sent again');

  // With refused-stream off, the refusal is the answer.
  await writeFile(`${dir}/gateway.yaml`, yaml('connect-failure, reset'));
  t.match(await gw.gateway.reload('test'), { result: 'success' });
  let offRefused = 0;
  for (let i = 0; i < 4; i++) {
    const before = refusing.seen.length;
    const r = await send({ path: `/orders/off-${i}` });
    if (refusing.seen.length > before) {
      offRefused++;
      t.equal(r.status, 502, 'refused-stream off: not retried');
    }
  }
  t.ok(offRefused > 0, 'the refusing target was tried with refused-stream off');
});
