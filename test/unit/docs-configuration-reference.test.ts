// docs/configuration.md against the schema, read at test time: every key path of the JSON Schema
// generated from the zod schema has a row, every row names a real key, and every default the
// schema applies is the one the row states (durations compared as milliseconds). Adding a key to
// src/config/schema.ts without documenting it fails here.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { configJsonSchema } from '../../src/cli/config-commands.js';
import { parseDuration } from '../../src/config/duration.js';
import { configSchema } from '../../src/config/schema.js';

type Node = Record<string, unknown>;

/** Key paths of a JSON Schema: `a.b`, `map.<name>.c`, `list[].d`, with the node of each. */
export function keyPaths(root: Node): Map<string, Node> {
  const defs = (root['$defs'] ?? root['definitions'] ?? {}) as Record<string, Node>;
  const resolve = (n: Node): Node => {
    const ref = n['$ref'];
    return typeof ref === 'string' ? resolve(defs[ref.replace(/^#\/(\$defs|definitions)\//, '')] ?? {}) : n;
  };
  const out = new Map<string, Node>();
  const walk = (raw: Node, at: string, depth: number): void => {
    if (depth > 20) return;
    const n = resolve(raw);
    for (const k of ['anyOf', 'oneOf', 'allOf'] as const) for (const alt of (n[k] as Node[] | undefined) ?? []) walk(alt, at, depth + 1);
    for (const [k, child] of Object.entries((n['properties'] as Record<string, Node> | undefined) ?? {})) {
      const p = at === '' ? k : `${at}.${k}`;
      if (!out.has(p)) out.set(p, resolve(child));
      walk(child, p, depth + 1);
    }
    const extra = n['additionalProperties'];
    if (extra !== null && typeof extra === 'object') {
      const p = `${at}.<name>`;
      if (!out.has(p)) out.set(p, resolve(extra as Node));
      walk(extra as Node, p, depth + 1);
    }
    const items = n['items'];
    if (items !== null && typeof items === 'object' && !Array.isArray(items)) walk(items as Node, `${at}[]`, depth + 1);
  };
  walk(root, '', 0);
  return out;
}

interface Row {
  keys: string[];
  type: string;
  dflt: string;
  line: number;
}

function docRows(text: string): Row[] {
  const rows: Row[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.startsWith('| `')) return;
    const cells = line.replace(/^\|\s*/, '').replace(/\s*\|\s*$/, '').split(/\s+\|\s+/);
    const keys = [...(cells[0] ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
    rows.push({ keys, type: cells[1] ?? '', dflt: (cells[2] ?? '').trim(), line: i + 1 });
  });
  return rows;
}

/** A minimal config that reaches every object the schema defaults into. */
function minimalConfig(withCrlUrls: boolean): Record<string, unknown> {
  const crl = withCrlUrls ? { crl: [{ url: 'http://pki.example/ca.crl' }] } : {};
  return {
    listen: { port: 8443 },
    tls: { cert: 'a', key: 'b', clientCA: 'c', ...crl },
    upstreams: { u: { url: 'https://u.example:9443', tls: { cert: 'a', key: 'b', ca: 'c', servername: 'u', ...crl } } },
    routes: [{ name: 'r', match: { pathPrefix: '/' }, upstream: 'u', allow: [{ spiffe: 'spiffe://example.org/x' }] }],
  };
}

/** The value at a key path in a parsed config (`<name>` = the one upstream, `[]` = the first element). */
function valueAt(obj: unknown, keyPath: string): unknown {
  let cur: unknown = obj;
  for (const part of keyPath.split('.')) {
    const m = /^([^[\]]+)((?:\[\])*)$/.exec(part);
    if (m === null || cur === null || typeof cur !== 'object') return undefined;
    const name = m[1]!;
    cur = name === '<name>' ? Object.values(cur as Record<string, unknown>)[0] : (cur as Record<string, unknown>)[name];
    for (let i = 0; i < m[2]!.length / 2; i++) cur = Array.isArray(cur) ? cur[0] : undefined;
  }
  return cur;
}

t.test('docs/configuration.md documents every key of the schema with its default', async (t) => {
  const doc = await readFile(new URL('../../docs/configuration.md', import.meta.url), 'utf8');
  const rows = docRows(doc);
  const byKey = new Map<string, Row>();
  for (const r of rows) for (const k of r.keys) if (!byKey.has(k) && /^[a-z<]/i.test(k) && !k.includes(' ')) byKey.set(k, r);
  const schema = keyPaths(configJsonSchema() as Node);
  t.ok(schema.size > 50, `the schema walk found ${schema.size} key paths`);

  const undocumented = [...schema.keys()].filter((k) => !byKey.has(k));
  t.same(undocumented, [], 'every schema key has a row in docs/configuration.md (add rows for new keys)');
  const stale = rows.flatMap((r) => r.keys.filter((k) => /^(listen|tls|upstreams|routes|server|log)\b/.test(k) && !schema.has(k)).map((k) => `${k} (line ${r.line})`));
  t.same(stale, [], 'every documented key exists in the schema');

  // Defaults as the schema applies them: parse a minimal config and read what it filled in.
  const input = minimalConfig(true);
  const parsed = configSchema.safeParse(input);
  const output = parsed.success ? parsed.data : configSchema.parse(minimalConfig(false));
  for (const [key, node] of schema) {
    const row = byKey.get(key);
    if (row === undefined) continue;
    const given = valueAt(parsed.success ? input : minimalConfig(false), key);
    const applied = valueAt(output, key);
    const jsonDefault = node['default'];
    // Containers state the default as written in the file (`{}`), not what their fields fill in.
    const isContainer = applied !== null && typeof applied === 'object' && !Array.isArray(applied);
    const expected = given === undefined && applied !== undefined && !isContainer ? applied : jsonDefault;
    if (expected === undefined) continue;
    const cell = row.dflt.replace(/`/g, '');
    if (typeof expected === 'object') {
      t.equal(cell, JSON.stringify(expected), `${key}: default ${JSON.stringify(expected)} (line ${row.line})`);
    } else if (typeof expected === 'number' && node['type'] === 'string') {
      // A duration: the schema turns the text into milliseconds.
      t.equal(cell === '0' ? 0 : parseDuration(cell), expected, `${key}: default ${expected} ms, doc says ${cell} (line ${row.line})`);
    } else {
      t.equal(cell, String(expected), `${key}: default ${String(expected)} (line ${row.line})`);
    }
  }

  // Required keys say so.
  const required = (configJsonSchema() as Node)['required'] as string[];
  for (const k of required) t.equal(byKey.get(k)?.dflt, 'required', `${k} is marked required`);
});
