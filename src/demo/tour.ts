/**
 * The guided tour: a fixed list of real requests over mTLS, each on a new TLS connection (so a
 * revoked certificate meets a full handshake, never a resumed session), with the answer the
 * default policy in config/gateway.yaml should produce. Shared by `npm run demo` and the
 * docker-compose client container.
 */
import { readFile } from 'node:fs/promises';
import https from 'node:https';
import path from 'node:path';
import { colours, formatTable } from './table.js';

export interface TourStep {
  readonly title: string;
  /** Client certificate name (DIR/client-NAME.crt), or null to connect without one. */
  readonly client: string | null;
  readonly method: string;
  /** Sent exactly as written, so encoding tricks reach the gateway unchanged. */
  readonly path: string;
  readonly expectStatus: number;
  /** Error code expected in the body; for a 200, the upstream service expected to answer. */
  readonly expect: string;
  /** Why the default policy gives this answer (printed with the result). */
  readonly why: string;
}

export const TOUR: readonly TourStep[] = [
  { title: 'allowed service (SPIFFE ID)', client: 'billing', method: 'GET', path: '/orders/42', expectStatus: 200, expect: 'orders', why: 'route orders allows spiffe://example.org/ns/*/sa/billing' },
  { title: 'allowed by subject, no SPIFFE', client: 'ops-admin', method: 'GET', path: '/inventory/widgets', expectStatus: 200, expect: 'inventory', why: 'route inventory allows subject CN=ops-admin, OU=sre' },
  { title: 'denied service', client: 'billing', method: 'GET', path: '/inventory/widgets', expectStatus: 403, expect: 'GW_ERR_POLICY_DENIED', why: 'route inventory does not list billing' },
  { title: 'unknown identity', client: 'intruder', method: 'GET', path: '/orders/42', expectStatus: 403, expect: 'GW_ERR_POLICY_DENIED', why: 'trusted CA, but no allow entry of route orders matches' },
  { title: 'no client certificate', client: null, method: 'GET', path: '/orders/42', expectStatus: 401, expect: 'GW_ERR_CLIENT_CERT_MISSING', why: 'mutual TLS is mandatory' },
  { title: 'revoked certificate', client: 'revoked', method: 'GET', path: '/orders/42', expectStatus: 401, expect: 'GW_ERR_CLIENT_CERT_REVOKED', why: 'its serial is on intermediate.crl.pem' },
  { title: 'path trick (encoded ../)', client: 'billing', method: 'GET', path: '/orders/..%2Finventory/widgets', expectStatus: 400, expect: 'GW_ERR_PATH_INVALID', why: 'an encoded "/" is refused, never decoded into another route' },
  { title: 'method not routed', client: 'billing', method: 'DELETE', path: '/orders/42', expectStatus: 404, expect: 'GW_ERR_ROUTE_NOT_FOUND', why: 'route orders matches GET and POST only' },
];

export interface TourTarget {
  readonly host: string;
  readonly port: number;
  /** TLS server name to verify the gateway's certificate against. */
  readonly servername: string;
  readonly certsDir: string;
}

export interface TourResult {
  readonly step: TourStep;
  readonly status: number | null;
  /** Error code, or the name of the upstream service that answered. */
  readonly got: string;
  readonly detail: string;
  readonly asExpected: boolean;
}

interface Answer {
  status: number;
  body: string;
}

function send(target: TourTarget, ca: string, step: TourStep, cert: { cert: string; key: string } | null): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: target.host,
        port: target.port,
        servername: target.servername,
        method: step.method,
        path: step.path,
        headers: { host: `${target.servername}:${target.port}` },
        ca,
        agent: false,
        ...(cert ?? {}),
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error('no answer within 15 s')));
    req.end();
  });
}

async function runStep(target: TourTarget, ca: string, step: TourStep): Promise<TourResult> {
  let cert: { cert: string; key: string } | null = null;
  if (step.client !== null) {
    const base = path.join(target.certsDir, `client-${step.client}`);
    try {
      cert = { cert: await readFile(`${base}.crt`, 'utf8'), key: await readFile(`${base}.key`, 'utf8') };
    } catch {
      return { step, status: null, got: 'skipped', detail: `${base}.crt or .key is missing`, asExpected: false };
    }
  }
  let answer: Answer;
  try {
    answer = await send(target, ca, step, cert);
  } catch (err) {
    return { step, status: null, got: 'no answer', detail: (err as Error).message, asExpected: false };
  }
  let json: Record<string, unknown> = {};
  try {
    json = JSON.parse(answer.body) as Record<string, unknown>;
  } catch {
    /* not JSON */
  }
  const error = json['error'] as { code?: string; message?: string } | undefined;
  let got: string;
  let detail: string;
  if (answer.status === 200) {
    got = String(json['service'] ?? '?');
    detail = `${step.why}; ${got} saw caller ${String(json['caller'] ?? '(none)')}`;
  } else {
    got = error?.code ?? '?';
    detail = step.why;
  }
  return { step, status: answer.status, got, detail, asExpected: answer.status === step.expectStatus && got === step.expect };
}

export async function runTour(target: TourTarget, steps: readonly TourStep[] = TOUR): Promise<TourResult[]> {
  const ca = await readFile(path.join(target.certsDir, 'ca-bundle.pem'), 'utf8');
  const results: TourResult[] = [];
  // One at a time: the order is the story.
  for (const step of steps) results.push(await runStep(target, ca, step));
  return results;
}

export function formatTour(results: readonly TourResult[], colour: boolean): string {
  const c = colours(colour);
  const rows = results.map((r, i) => [
    String(i + 1),
    r.step.title,
    r.step.client === null ? '(none)' : `client-${r.step.client}`,
    `${r.step.method} ${r.step.path}`,
    `${r.status ?? '---'} ${r.got}`,
    r.asExpected ? 'ok' : `UNEXPECTED, wanted ${r.step.expectStatus} ${r.step.expect}`,
    r.detail,
  ]);
  const table = formatTable(['#', 'SCENARIO', 'CLIENT CERT', 'REQUEST', 'ANSWER', 'CHECK', 'WHY'], rows, (text, row, col) =>
    col === 5 ? (results[row]!.asExpected ? c.green(text) : c.red(text)) : text,
  );
  const good = results.filter((r) => r.asExpected).length;
  return `${table}\n${good}/${results.length} answers as expected\n`;
}
