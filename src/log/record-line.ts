/**
 * The one record the gateway writes per request served, without pino's generic serializer.
 *
 * pino turns a record object into JSON key by key: per field it quotes the key and the value and
 * appends both to the line, about 3 KB of short-lived strings for a 16-field access record
 * (sampling heap profile, Node 24.21, bench/README.md) and the largest single allocation of a
 * proxied request. Here the caller writes the fields as JSON members itself (a template with
 * JSON.stringify for the strings) and this module puts pino's own parts around them: the level
 * label and the timestamp pino caches, the child logger's bindings, the message and the line end,
 * read through `pino.symbols` (pino's export for integrations). The line is the one pino would
 * write for the same fields in the same order (test/unit/record-line-matches-pino.test.ts).
 *
 * A logger configured beyond what that covers (a mixin, a log formatter, hooks, redaction, a
 * nested key, a message prefix, a custom message key, custom levels, a multistream) is handed the
 * record object instead, through its own `info`.
 */
import { pino, type Logger } from 'pino';

const S = pino.symbols as unknown as Record<string, symbol>;
const lsCacheSym = S['lsCacheSym']!;
const timeSym = S['timeSym']!;
const chindingsSym = S['chindingsSym']!;
const streamSym = S['streamSym']!;
const endSym = S['endSym']!;
const mixinSym = S['mixinSym']!;
const nestedKeySym = S['nestedKeySym']!;
const messageKeySym = S['messageKeySym']!;
const msgPrefixSym = S['msgPrefixSym']!;
const stringifiersSym = S['stringifiersSym']!;
const serializersSym = S['serializersSym']!;
const formattersSym = S['formattersSym']!;
const hooksSym = S['hooksSym']!;
const needsMetadataGsym = S['needsMetadataGsym']!;

/** pino's number for `info`. */
const INFO = 30;

type PinoInternals = Record<symbol, unknown>;

/** Loggers checked once (a child shares its parent's configuration but has its own bindings). */
const plain = new WeakMap<Logger, boolean>();

/** The logger writes a record exactly as composed here (see the header). */
function isPlain(logger: Logger): boolean {
  let ok = plain.get(logger);
  if (ok === undefined) {
    const l = logger as unknown as PinoInternals;
    const formatters = l[formattersSym] as { log?: unknown } | undefined;
    const hooks = l[hooksSym] as { streamWrite?: unknown; logMethod?: unknown } | undefined;
    const stringifiers = l[stringifiersSym] as Record<PropertyKey, unknown> | undefined;
    const serializers = l[serializersSym] as Record<string, unknown> | undefined;
    const stream = l[streamSym] as Record<symbol, unknown> & { write?: unknown } | undefined;
    const lsCache = l[lsCacheSym] as Record<number, unknown> | undefined;
    ok =
      typeof lsCache?.[INFO] === 'string' &&
      typeof l[timeSym] === 'function' &&
      typeof l[chindingsSym] === 'string' &&
      typeof l[endSym] === 'string' &&
      typeof stream?.write === 'function' &&
      stream[needsMetadataGsym] !== true &&
      !l[mixinSym] &&
      !l[nestedKeySym] &&
      !l[msgPrefixSym] &&
      l[messageKeySym] === 'msg' &&
      !formatters?.log &&
      !hooks?.streamWrite &&
      !hooks?.logMethod &&
      (stringifiers === undefined || Reflect.ownKeys(stringifiers).length === 0) &&
      (serializers === undefined || Object.keys(serializers).every((k) => k === 'err')) &&
      logger.levels.values['info'] === INFO;
    plain.set(logger, ok);
  }
  return ok;
}

/** A record that can write itself as JSON members as well as be an object (see writeInfoRecord). */
export interface InfoRecord {
  /** The fields serialized as JSON members in order (`"a":1,"b":"x"`, no leading comma, at least one). */
  jsonMembers(): string;
  /** The same fields as an object, for a logger this module does not compose lines for. */
  asObject(): Record<string, unknown>;
}

/** Writes `record` at `info` with message `msg`. Nothing is built when `info` is not logged. */
export function writeInfoRecord(logger: Logger, record: InfoRecord, msg: string): void {
  if (!logger.isLevelEnabled('info')) return;
  if (!isPlain(logger)) {
    logger.info(record.asObject(), msg);
    return;
  }
  const l = logger as unknown as PinoInternals;
  const line = `${(l[lsCacheSym] as Record<number, string>)[INFO]}${(l[timeSym] as () => string)()}${l[chindingsSym] as string},${record.jsonMembers()},"msg":${JSON.stringify(msg)}${l[endSym] as string}`;
  (l[streamSym] as { write(line: string): unknown }).write(line);
}
