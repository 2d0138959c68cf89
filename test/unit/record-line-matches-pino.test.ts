/**
 * The access record composed by src/log/record-line.ts must be the line pino itself writes for the
 * same fields, byte for byte: log readers parse one format. Checked against the gateway's own
 * logger (createGatewayLogger, with a child's bindings as on a connection) and against loggers
 * configured beyond what the composer covers, which must get pino's own line through the fallback.
 */
import t from 'tap';
import { mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { createGatewayLogger, flushLogSync } from '../../src/log/gateway-logger.js';
import { writeInfoRecord, type InfoRecord } from '../../src/log/record-line.js';
import { formatMillis, ServedRecord } from '../../src/dataplane/log-records.js';

/** A record as proxy-http.ts builds it: the members are the object's defined fields as JSON. */
function recordOf(fields: Record<string, unknown>): InfoRecord & { objects: number; members: number } {
  return {
    objects: 0,
    members: 0,
    asObject() {
      this.objects++;
      return fields;
    },
    jsonMembers() {
      this.members++;
      return Object.entries(fields)
        .filter(([, v]) => v !== undefined)
        .map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`)
        .join(',');
    },
  };
}

const bindings = {
  client: {
    subject: 'CN=billing,OU=payments,O=Example',
    issuer: 'CN=Example Dev Intermediate CA,O=Example',
    serial: '21FDA0E304D1455DAC7E02D41EC68083',
    fingerprint: 'df86496d368ae0721c21cc3f690aff38b8ed769f0f546cf3ba538299aa3a1773',
    spiffe: 'spiffe://example.org/ns/default/sa/billing',
  },
};

// Strings an attacker controls reach the record through the path: quotes, backslashes, control
// characters, bytes above 0x7f (Node hands header bytes over as latin1), U+2028, long strings.
const hostilePaths = ['/', '/a"b', '/a\\b', '/a\u0001b\u001fc', '/caf\u00e9/\u00ff', '/\u2028\u2029', `/${'x'.repeat(300)}`, '/{"level":"error"}', '/\n{"forged":true}'];

function fieldsFor(path: string): Record<string, unknown> {
  return {
    reqId: 'ecf908ea-d515-4e2d-9ad3-f2522a73d55e',
    httpVersion: '1.1',
    method: 'GET',
    path,
    upstreamPath: path === '/' ? undefined : `/v2${path}`,
    route: 'all',
    rule: path.length % 2 === 0 ? null : 'routes[0].allow[0]',
    upstream: 'bench',
    decision: 'allow',
    target: 'https://127.0.0.1:41883',
    status: 200,
    bytesOut: 100,
    durationMs: 2.316335,
  };
}

/** Logs every record twice to the gateway's logger, once composed and once through pino, and returns the lines. */
async function gatewayLines(level: 'info' | 'warn', write: (log: Logger) => void): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'record-line-'));
  try {
    const file = join(dir, 'log');
    const fd = openSync(file, 'w');
    // A fixed clock would not reach the cached timestamp; both lines of a pair are compared
    // without their time, which pino and the composer take from the same function.
    const root = createGatewayLogger({ level, bufferBytes: 0, flushInterval: 1000 }, fd);
    const child = root.child(bindings);
    write(child);
    // Every line written, the one already on the thread pool included: flushLogSync alone does
    // not wait for that one (the writer's documented exit behaviour), and on a busy machine it
    // could land after the file was read.
    await new Promise<void>((resolve) => root.flush(() => resolve()));
    flushLogSync(root);
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const withoutTime = (line: string) => line.replace(/,"time":("[^"]*"|\d+)/, ',"time":"-"');
/** A path as a test name: TAP reads U+2028 and control characters as line breaks. */
const shown = (path: string) => JSON.stringify(path).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** The served record of proxy-http.ts for `path`, with the rare fields when asked. */
function servedFor(path: string, rare: { audit?: boolean; attempts?: boolean; cut?: boolean } = {}): ServedRecord {
  const f = fieldsFor(path);
  return new ServedRecord(
    f['reqId'] as string,
    f['httpVersion'] as string,
    f['method'] as string,
    path,
    f['upstreamPath'] as string | undefined,
    f['route'] as string,
    f['rule'] as string | null,
    f['upstream'] as string,
    f['decision'] as string,
    rare.audit ? { code: 'GW_ERR_POLICY_DENIED', reason: `no rule allows ${path}` } : null,
    f['target'] as string,
    f['status'] as number,
    f['bytesOut'] as number,
    2316,
    rare.attempts ? [{ target: 'https://127.0.0.1:1', outcome: 'GW_ERR_UPSTREAM_UNREACHABLE', durationMs: 0.5 }] : null,
    rare.cut ? new Error('upstream reset "mid-body"') : null,
    rare.cut === true,
  );
}

t.test("the gateway's logger: the composed line is pino's line", async (t) => {
  const lines = await gatewayLines('info', (log) => {
    for (const path of hostilePaths) {
      const record = recordOf(fieldsFor(path));
      writeInfoRecord(log, record, 'request');
      t.equal(record.members, 1, `${shown(path)}: composed`);
      t.equal(record.objects, 0, `${shown(path)}: no object built`);
      log.info(fieldsFor(path), 'request');
    }
  });
  t.equal(lines.length, hostilePaths.length * 2);
  for (let i = 0; i < hostilePaths.length; i++) {
    const [composed, byPino] = [lines[2 * i]!, lines[2 * i + 1]!];
    t.equal(withoutTime(composed), withoutTime(byPino), `${shown(hostilePaths[i]!)}: byte for byte`);
    const parsed = JSON.parse(composed) as Record<string, unknown>;
    t.equal(parsed['path'], hostilePaths[i], 'the path reads back as it was');
    t.equal(parsed['level'], 'info');
    t.same(parsed['client'], bindings.client, "the connection's bindings are in the line");
    t.notOk('forged' in parsed, 'nothing is injected into the record');
  }
});

t.test("proxy-http.ts's served record: its own members are pino's line of its object", async (t) => {
  const cases: [string, ServedRecord][] = hostilePaths.map((p) => [shown(p), servedFor(p)]);
  cases.push(['not a finite duration', new ServedRecord('r', '1.0', 'HEAD', '/', undefined, 'r', null, 'u', 'would-deny', null, 'https://[::1]:1', 204, 0, Number.NaN, null, null, false)]);
  const lines = await gatewayLines('info', (log) => {
    for (const [name, record] of cases) {
      t.ok(record.composable, `${name}: composable`);
      writeInfoRecord(log, record, 'request');
      log.info(record.asObject(), 'request');
    }
  });
  t.equal(lines.length, cases.length * 2);
  for (let i = 0; i < cases.length; i++) t.equal(withoutTime(lines[2 * i]!), withoutTime(lines[2 * i + 1]!), `${cases[i]![0]}: byte for byte`);
  t.match(JSON.parse(lines[0]!), { reqId: 'ecf908ea-d515-4e2d-9ad3-f2522a73d55e', httpVersion: '1.1', method: 'GET', path: '/', route: 'all', upstream: 'bench', decision: 'allow', target: 'https://127.0.0.1:41883', status: 200, bytesOut: 100, durationMs: 2.316, msg: 'request' });
  t.notOk('upstreamPath' in JSON.parse(lines[0]!), 'no upstreamPath unless rewritten');
  t.equal(JSON.parse(lines[2]!).upstreamPath, '/v2/a"b', 'a rewritten path is logged');
  t.equal(JSON.parse(lines.at(-1)!).durationMs, null, 'a duration that is not finite is null, as pino writes it');

  // The rare fields go through pino as an object, in the same order as before.
  for (const rare of [{ audit: true }, { attempts: true }, { cut: true }]) {
    const record = servedFor('/x', rare);
    t.notOk(record.composable, `${Object.keys(rare)[0]}: not composed`);
    const object = record.asObject();
    t.same(
      Object.keys(object).filter((k) => object[k] !== undefined),
      ['reqId', 'httpVersion', 'method', 'path', 'upstreamPath', 'route', 'rule', 'upstream', 'decision', ...(rare.audit ? ['audit'] : []), 'target', 'status', 'bytesOut', 'durationMs', ...(rare.attempts ? ['attempts'] : []), ...(rare.cut ? ['cut', 'clientAborted'] : [])],
      `${Object.keys(rare)[0]}: the record's fields in order`,
    );
  }
});

t.test('below info, nothing is built or written', async (t) => {
  const record = recordOf(fieldsFor('/'));
  const lines = await gatewayLines('warn', (log) => writeInfoRecord(log, record, 'request'));
  t.same(lines, []);
  t.equal(record.members + record.objects, 0);
});

t.test('a logger configured beyond what the composer covers gets the object, through pino', async (t) => {
  const configs: [string, pino.LoggerOptions][] = [
    ['a mixin', { mixin: () => ({ extra: 1 }) }],
    ['a log formatter', { formatters: { log: (o: Record<string, unknown>) => ({ ...o, formatted: true }) } }],
    ['redaction', { redact: ['path'] }],
    ['a nested key', { nestedKey: 'payload' }],
    ['a message key', { messageKey: 'message' }],
    ['a message prefix', { msgPrefix: '[gw] ' }],
    ['a streamWrite hook', { hooks: { streamWrite: (s: string) => s.replace('bench', 'BENCH') } }],
    ['a serializer', { serializers: { path: (p: string) => p.toUpperCase() } }],
  ];
  for (const [name, options] of configs) {
    const out: string[] = [];
    const sink = new Writable({ write: (chunk, _enc, cb) => (out.push(String(chunk)), cb()) });
    const log = pino({ ...options, timestamp: false, base: null }, sink);
    const record = recordOf(fieldsFor('/a"b'));
    writeInfoRecord(log, record, 'request');
    log.info(fieldsFor('/a"b'), 'request');
    await new Promise((r) => setImmediate(r));
    t.equal(record.objects, 1, `${name}: the object was handed to pino`);
    t.equal(record.members, 0, `${name}: no line composed`);
    t.equal(out.length, 2, `${name}: two lines`);
    t.equal(out[0], out[1], `${name}: the same line as pino writes`);
  }
});

t.test("pino's defaults (epoch time, numeric level) compose the same line as pino", async (t) => {
  const out: string[] = [];
  const sink = new Writable({ write: (chunk, _enc, cb) => (out.push(String(chunk)), cb()) });
  const log = pino({}, sink).child({ conn: 7 });
  const record = recordOf(fieldsFor('/x'));
  writeInfoRecord(log, record, 'request');
  log.info(fieldsFor('/x'), 'request');
  await new Promise((r) => setImmediate(r));
  t.equal(record.members, 1, 'composed');
  t.equal(withoutTime(out[0]!), withoutTime(out[1]!));
  t.match(out[0], /^\{"level":30,"time":\d+,"pid":\d+,"hostname":"[^"]*","conn":7,"reqId":/);
});

t.test('formatMillis(micros) reads as String(micros / 1000)', async (t) => {
  const values = [0, 1, 5, 9, 10, 30, 99, 100, 101, 110, 300, 999, 1000, 1001, 1010, 1100, 2030, 2300, 2316, 999_999, 1_000_000, 86_400_000_000, 1e15, 1e15 + 1, Number.MAX_SAFE_INTEGER];
  for (let i = 0; i < 20_000; i++) values.push(Math.floor(Math.random() * 10 ** (1 + (i % 13))));
  let wrong = 0;
  for (const v of values) if (formatMillis(v) !== String(v / 1000)) wrong++;
  t.equal(wrong, 0, `${values.length} values, none differs`);
  for (const v of [-1, 1.5, Number.NaN, Infinity]) t.equal(formatMillis(v), String(v / 1000), `${v}: falls back to String()`);
});

t.test('records stay right however many distinct methods, routes and targets a gateway sees', async (t) => {
  // The repeated strings are remembered up to a bound; beyond it they are quoted each time.
  let wrong = 0;
  for (let i = 0; i < 3000; i++) {
    const method = `M${i}"\\${'x'.repeat(i % 300)}`;
    const record = new ServedRecord('r-1234567', '1.1', method, '/', undefined, `route-${i}`, `rule "${i}"`, 'u', 'allow', null, `https://h${i}:1`, 200, 1, 1000 + i, null, null, false);
    const parsed = JSON.parse(`{${record.jsonMembers()}}`) as Record<string, unknown>;
    if (parsed['method'] !== method || parsed['route'] !== `route-${i}` || parsed['rule'] !== `rule "${i}"` || parsed['target'] !== `https://h${i}:1`) wrong++;
  }
  t.equal(wrong, 0, '3000 records with distinct values, all read back as written');
});
