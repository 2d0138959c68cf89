/**
 * The stack the front-door security tests drive: one gateway with a denied route nested inside an
 * allowed one (`/orders/admin` admits nobody, `/orders` admits billing), and a recording upstream
 * that judges every request it receives against the invariants the gateway promises:
 *
 * - nothing under the denied prefix, as the upstream itself reads the path. Two upstreams are
 *   offered: `exact` routes on the path byte for byte; `aggressive` first normalizes the way
 *   servlet containers, IIS and lenient routers do (percent-decode incl. %uXXXX and overlong
 *   UTF-8, `\` as `/`, strip `;params`, trim blanks at both ends of a segment (Java's trim, as
 *   Spring's trimTokens does) and trailing dots (IIS), fold case, resolve dot segments, collapse
 *   slashes). Against the aggressive one the gateway runs with
 *   `server.paths.caseSensitive: false`, which is how an operator must configure it in front of a
 *   case-folding upstream;
 * - the path is already canonical (no `;`, encoded `/` `\` `.` or control characters, no dot
 *   segments, no `//`, no `\`, nothing outside printable ASCII);
 * - it carries exactly one x-forwarded-client-cert, naming billing (the only identity allowed);
 * - no identity header the client forged (values carry the marker FORGED) survived, under any
 *   spelling (case, `_` for `-`);
 * - no request that the corpora smuggle (marked `X-Smuggled`) ever arrives as a request;
 * - no Upgrade / HTTP2-Settings / Proxy-Connection header is passed on (h2c smuggling).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { rawTlsExchange } from './raw-tls-request.js';
import { startGateway, tempDir, writePkiFiles, gatewayYaml, type TestGateway, type TestPki, type LogRecord } from './harness.js';

export const DENIED_PREFIX = '/orders/admin';
export const BILLING_SPIFFE = 'spiffe://example.org/ns/default/sa/billing';

export const FRONT_DOOR_ROUTES_YAML = `
routes:
  - name: orders-admin
    match: { pathPrefix: /orders/admin }
    upstream: orders
    allow: []
  - name: orders
    match: { pathPrefix: /orders }
    upstream: orders
    allow:
      - spiffe: ${BILLING_SPIFFE}
`;

/** Header names the gateway owns: whatever a client sends under them must never reach upstream. */
const OWNED_HEADERS = new Set([
  'forwarded',
  'x-forwarded-client-cert',
  'x-request-id',
  'client-cert',
  'client-cert-chain',
  'x-client-verify',
  'x-real-ip',
]);

export function isOwnedHeader(name: string): boolean {
  const n = name.toLowerCase().replaceAll('_', '-');
  return OWNED_HEADERS.has(n) || n.startsWith('x-forwarded-') || n.startsWith('x-ssl-client-cert');
}

export type UpstreamMode = 'exact' | 'aggressive';

export interface UpstreamHit {
  readonly method: string;
  readonly url: string;
  /** The path as this upstream reads it when deciding what to serve. */
  readonly view: string;
  readonly rawHeaders: readonly string[];
  /** The x-fuzz-case header, when the request carried one. */
  readonly caseId: string | undefined;
  readonly violations: readonly string[];
  bodyBytes: number;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** UTF-8 as a lenient decoder reads it: overlong forms and lone surrogates are accepted. */
function lenientUtf8(bytes: number[]): string {
  let out = '';
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    const cont = (k: number) => i + k < bytes.length && (bytes[i + k]! & 0xc0) === 0x80;
    if (b < 0x80) out += String.fromCharCode(b);
    else if ((b & 0xe0) === 0xc0 && cont(1)) {
      out += String.fromCharCode(((b & 0x1f) << 6) | (bytes[i + 1]! & 0x3f));
      i += 1;
    } else if ((b & 0xf0) === 0xe0 && cont(1) && cont(2)) {
      out += String.fromCharCode(((b & 0x0f) << 12) | ((bytes[i + 1]! & 0x3f) << 6) | (bytes[i + 2]! & 0x3f));
      i += 2;
    } else if ((b & 0xf8) === 0xf0 && cont(1) && cont(2) && cont(3)) {
      out += String.fromCodePoint(Math.min(0x10ffff, ((b & 0x07) << 18) | ((bytes[i + 1]! & 0x3f) << 12) | ((bytes[i + 2]! & 0x3f) << 6) | (bytes[i + 3]! & 0x3f)));
      i += 3;
    } else out += String.fromCharCode(b); // read as latin1, as many lenient decoders do
  }
  return out;
}

/** Decodes %XX and IIS-style %uXXXX once; a malformed escape stays as it is. */
function lenientPercentDecode(s: string): string {
  const bytes: number[] = [];
  let out = '';
  const flush = () => {
    if (bytes.length > 0) out += lenientUtf8(bytes.splice(0));
  };
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x25) {
      if ((s[i + 1] === 'u' || s[i + 1] === 'U')) {
        const hex = s.slice(i + 2, i + 6);
        if (/^[0-9a-fA-F]{4}$/.test(hex)) {
          flush();
          out += String.fromCharCode(parseInt(hex, 16));
          i += 5;
          continue;
        }
      }
      const h1 = hexValue(s.charCodeAt(i + 1));
      const h2 = hexValue(s.charCodeAt(i + 2));
      if (h1 >= 0 && h2 >= 0) {
        bytes.push(h1 * 16 + h2);
        i += 2;
        continue;
      }
    }
    flush();
    // Raw bytes above 0x7f arrive as latin1 characters (Node's http parser hands them over so).
    if (c >= 0x80 && c <= 0xff) bytes.push(c);
    else out += s[i];
  }
  flush();
  return out;
}

/** The request-target as an aggressively normalizing upstream reads it (see the module comment). */
export function aggressiveNormalize(target: string): string {
  let p = target;
  const abs = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*/.exec(p);
  if (abs) p = p.slice(abs[0].length);
  const cut = p.search(/[?#]/);
  if (cut >= 0) p = p.slice(0, cut);
  p = lenientPercentDecode(p).replaceAll('\\', '/');
  const out: string[] = [];
  for (const rawSeg of p.split('/')) {
    let seg = rawSeg;
    const semi = seg.indexOf(';');
    if (semi >= 0) seg = seg.slice(0, semi);
    // Blanks as Java's String.trim() sees them (Spring's trimTokens trims both ends): <= U+0020.
    seg = seg.replace(/^[\x00-\x20]+|[\x00-\x20]+$/g, '');
    if (seg === '..') {
      out.pop();
      continue;
    }
    // Then trailing dots and blanks, as IIS and the Windows file layer drop them.
    seg = seg.replace(/[\x00-\x20.]+$/, '');
    if (seg === '') continue;
    out.push(seg.toLowerCase());
  }
  return '/' + out.join('/');
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q < 0 ? url : url.slice(0, q);
}

/** Ways the path an upstream received is not the canonical form the gateway promises. */
export function nonCanonical(url: string): string[] {
  const p = pathOf(url);
  const why: string[] = [];
  if (!p.startsWith('/')) why.push('not origin-form');
  if (p.includes(';')) why.push('";" in the path');
  if (/%2f/i.test(p)) why.push('encoded "/"');
  if (/%5c/i.test(p)) why.push('encoded "\\"');
  if (/%2e/i.test(p)) why.push('encoded "."');
  if (/%3b/i.test(p)) why.push('encoded ";"');
  if (/%[01][0-9a-f]|%7f/i.test(p)) why.push('encoded control character');
  if (/%25(2f|5c|2e|00)/i.test(p)) why.push('double-encoded separator or dot');
  if (p.includes('\\')) why.push('backslash');
  if (p.includes('//')) why.push('"//"');
  if (/(^|\/)\.\.?(\/|$)/.test(p)) why.push('dot segment');
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f-\uffff]/.test(p)) why.push('control, space or non-ASCII character');
  if (/%(?![0-9A-Fa-f]{2})/.test(p)) why.push('malformed escape');
  return why;
}

function underDenied(view: string, mode: UpstreamMode): boolean {
  const v = mode === 'aggressive' ? view.toLowerCase() : view;
  return v === DENIED_PREFIX || v.startsWith(DENIED_PREFIX + '/');
}

export function invariantViolations(method: string, url: string, view: string, rawHeaders: readonly string[], mode: UpstreamMode): string[] {
  const v: string[] = [];
  if (underDenied(view, mode)) v.push(`reached the denied prefix ${DENIED_PREFIX} (the ${mode} upstream read ${JSON.stringify(url)} as ${JSON.stringify(view)})`);
  const nc = nonCanonical(url);
  if (nc.length > 0) v.push(`forwarded a non-canonical path ${JSON.stringify(url)}: ${nc.join(', ')}`);
  const xfcc: string[] = [];
  let smuggled = false;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1] ?? '';
    if (name.toLowerCase() === 'x-forwarded-client-cert') xfcc.push(value);
    if (name.toLowerCase() === 'x-smuggled') smuggled = true;
    if (isOwnedHeader(name) && value.includes('FORGED')) v.push(`client-forged identity header passed through: ${name}: ${value.slice(0, 80)}`);
    // h2c smuggling (Bishop Fox, 2020): an upgrade the upstream accepts is a tunnel past the policy.
    // The one upgrade the gateway makes itself, after admission, is WebSocket (docs/websocket.md).
    if (/^(http2-settings|proxy-connection)$/i.test(name) || (/^upgrade$/i.test(name) && value.toLowerCase() !== 'websocket')) {
      v.push(`hop-by-hop header passed through: ${name}: ${value.slice(0, 80)}`);
    }
  }
  // The embedded request (X-Smuggled) is a finding when it arrived without the gateway's judgement:
  // bytes the gateway forwarded as a body that the upstream read as a request carry no XFCC of the
  // gateway's. Pipelined after a complete request it is a request of its own, which the gateway
  // judges: under the denied prefix that is the finding above; a mutation that moved its path
  // elsewhere (fuzz seed 1316462024 deleted the "/" of "/orders/admin/users") makes it a request
  // the policy allows, correctly forwarded with the client's XFCC.
  if (smuggled && (xfcc.length !== 1 || !xfcc[0]!.includes(`URI=${BILLING_SPIFFE}`))) v.push(`a smuggled request arrived as a request: ${method} ${JSON.stringify(url)}`);
  if (xfcc.length !== 1) v.push(`expected exactly one x-forwarded-client-cert, got ${xfcc.length}`);
  else if (!xfcc[0]!.includes(`URI=${BILLING_SPIFFE}`)) v.push(`forwarded for an identity the policy does not allow: XFCC ${xfcc[0]!.slice(0, 160)}`);
  return v;
}

/**
 * The recording upstream: real mTLS like the harness's, but with a 64 KiB header limit (so that a
 * large request the gateway accepted is judged by the test, not refused by the upstream's own
 * parser) and with its parser errors recorded: bytes from the gateway that an HTTP/1.1 server
 * cannot parse are a finding of their own.
 */
interface RecordingUpstream {
  readonly port: number;
  readonly parseErrors: string[];
  close(): Promise<void>;
}

async function startRecordingUpstream(pki: TestPki, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<RecordingUpstream> {
  const parseErrors: string[] = [];
  const server = pki.upstreams['orders']!;
  const srv = https.createServer({ key: server.keyPem, cert: server.chainPem, ca: pki.caBundlePem, requestCert: true, rejectUnauthorized: true, maxHeaderSize: 65_536 }, handler);
  srv.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket) => {
    if (err.code !== 'ECONNRESET' && err.code !== 'HPE_INVALID_EOF_STATE') {
      parseErrors.push(`the upstream's parser refused what the gateway sent: ${err.code ?? err.message} ${JSON.stringify((err.rawPacket ?? Buffer.alloc(0)).subarray(0, 160).toString('latin1'))}`);
    }
    socket.destroy();
  });
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve));
  return {
    port: (srv.address() as AddressInfo).port,
    parseErrors,
    close: () =>
      new Promise<void>((resolve) => {
        srv.closeAllConnections();
        srv.close(() => resolve());
      }),
  };
}

export interface FrontDoor {
  readonly mode: UpstreamMode;
  readonly port: number;
  readonly gw: TestGateway;
  readonly upstream: RecordingUpstream;
  readonly hits: UpstreamHit[];
  /** Set when the gateway refused the config this mode needs and a fallback was started. */
  readonly configProblem: string | null;
  logs(): LogRecord[];
  /** Every invariant violation seen by the upstream so far, with the request that caused it. */
  violations(): string[];
  close(): Promise<void>;
}

export async function startFrontDoor(pki: TestPki, mode: UpstreamMode, opts: { serverYaml?: string } = {}): Promise<FrontDoor> {
  const { dir, cleanup } = await tempDir('mtls-gw-front-door-');
  await writePkiFiles(pki, dir);
  const hits: UpstreamHit[] = [];
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '';
    const view = mode === 'aggressive' ? aggressiveNormalize(url) : pathOf(url);
    const caseHeader = req.headers['x-fuzz-case'];
    const hit: UpstreamHit = {
      method: req.method ?? '',
      url,
      view,
      rawHeaders: req.rawHeaders,
      caseId: typeof caseHeader === 'string' ? caseHeader : undefined,
      violations: invariantViolations(req.method ?? '', url, view, req.rawHeaders, mode),
      bodyBytes: 0,
    };
    hits.push(hit);
    req.on('data', (c: Buffer) => (hit.bodyBytes += c.length));
    req.on('error', () => {});
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'yes' });
      res.end(JSON.stringify({ url, view, bodyBytes: hit.bodyBytes }));
    });
  };
  const upstream = await startRecordingUpstream(pki, handler);
  // In front of a case-folding upstream the operator must tell the gateway so (server.paths).
  const wanted = mode === 'aggressive' ? 'server:\n  paths: { caseSensitive: false }\n' : '';
  const serverYaml = opts.serverYaml ?? wanted;
  const yaml = (server: string) => gatewayYaml({ upstreamPort: upstream.port, routes: FRONT_DOOR_ROUTES_YAML, extra: server });
  let configProblem: string | null = null;
  let gw: TestGateway;
  try {
    gw = await startGateway({ dir, yaml: yaml(serverYaml) });
  } catch (err) {
    if (serverYaml === '') {
      await upstream.close();
      await cleanup();
      throw err;
    }
    configProblem = `the gateway refused ${JSON.stringify(serverYaml.trim())}: ${(err as Error).message.split('\n').slice(0, 3).join(' ')}`;
    gw = await startGateway({ dir, yaml: yaml('') });
  }
  return {
    mode,
    port: gw.port,
    gw,
    upstream,
    hits,
    configProblem,
    logs: () => gw.logs,
    violations: () => [
      ...hits.flatMap((h) => h.violations.map((v) => `${v} [${h.method} ${JSON.stringify(h.url)}${h.caseId ? ` case ${h.caseId}` : ''}]`)),
      ...upstream.parseErrors,
    ],
    async close() {
      await gw.close();
      await upstream.close();
      await cleanup();
    },
  };
}

/** Error-level records and records carrying an error: what to print next to a finding. */
export function errorLogs(logs: readonly LogRecord[], since = 0): string[] {
  return logs
    .slice(since)
    .filter((r) => r.level >= 50 || r['err'] !== undefined)
    .map((r) => {
      const err = r['err'] as { type?: string; message?: string; stack?: string } | undefined;
      return `${r.msg} ${String(r['code'] ?? '')} ${err ? `${err.type ?? ''}: ${err.message ?? ''}\n${(err.stack ?? '').split('\n').slice(0, 6).join('\n')}` : ''}`;
    });
}

/** Who a raw request speaks as: an allowed client, a valid but unauthorized one, none, untrusted, expired. */
export type ClientKind = 'billing' | 'intruder' | 'none' | 'untrusted' | 'expired';

/** Whether the gateway must treat this client as authenticated (its requests may reach routing). */
export function isValidClient(kind: ClientKind): boolean {
  return kind === 'billing' || kind === 'intruder';
}

export function credentialsFor(pki: TestPki, kind: ClientKind): { cert?: string; key?: string } {
  const issued =
    kind === 'billing' ? pki.clients['billing'] : kind === 'intruder' ? pki.clients['intruder'] : kind === 'untrusted' ? pki.rogueClient : kind === 'expired' ? pki.expired : undefined;
  return issued ? { cert: issued.chainPem, key: issued.keyPem } : {};
}

/**
 * A request that must always work: billing GETs an allowed path on a fresh connection. Returns
 * null when the gateway answered it from the upstream, else what went wrong.
 */
export async function knownGoodProblem(fd: FrontDoor, pki: TestPki): Promise<string | null> {
  const x = await rawTlsExchange({
    port: fd.port,
    ca: pki.root.certPem,
    ...credentialsFor(pki, 'billing'),
    payload: 'GET /orders/known-good HTTP/1.1\r\nHost: localhost\r\n\r\n',
    expectResponses: 1,
    timeoutMs: 5_000,
  });
  const r = x.responses.find((res) => !res.interim);
  if (r && r.status === 200 && r.header('x-upstream').includes('yes')) return null;
  return `the known-good request got ${r ? `${r.status} ${r.body.toString('utf8').slice(0, 120)}` : `no answer (${x.ending}${x.socketError ? `, ${x.socketError}` : ''})`}`;
}
