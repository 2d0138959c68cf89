// Imports under src/ run one way: a folder may import from its own layer or an earlier one, never
// from a later one (docs/architecture.md). Identity and revocation once imported each other; the
// shared certificate primitives now live in src/x509 and identity consults revocation through an
// interface it declares (ChainRevocationSource), so this test keeps it that way. Type-only imports
// count: they couple the layers just the same.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/**
 * Earliest first; folders in one entry share a layer. A folder listed here that does not exist is
 * ignored; a folder under src/ that is not listed fails the test, so a new one must be placed.
 */
const LAYERS: readonly (readonly string[])[] = [
  ['errors', 'log'],
  ['config'],
  ['x509'],
  ['pki'],
  ['identity'],
  ['revocation'],
  ['request'],
  ['policy'],
  ['proxy', 'upstream'],
  // Metrics know nothing of the gateway: the data plane counts into them, and the state they
  // report at scrape time comes in through an interface (src/telemetry/metrics.ts).
  ['telemetry'],
  ['runtime'],
  ['dataplane'],
  ['http'],
  ['admin'],
  ['cli'],
  ['demo'],
];

/**
 * Files that belong to another layer than their folder's, while they are being moved: the request
 * normalizers are leaving src/http for src/request, and policy already depends on them. An entry
 * whose file no longer exists is ignored.
 */
const LAYER_OF_FILE: Readonly<Record<string, string>> = {
  'http/normalize-path.ts': 'request',
  'http/host-header.ts': 'request',
  'http/request-id.ts': 'request',
};

const rank = new Map<string, number>();
LAYERS.forEach((folders, i) => folders.forEach((f) => rank.set(f, i)));

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return walk(full);
    return name.endsWith('.ts') ? [full] : [];
  });
}

/** The layer of a file under src/, by its first folder (or LAYER_OF_FILE). */
function layerOf(file: string): string | null {
  const rel = path.relative(SRC, file).split(path.sep).join('/');
  if (rel.startsWith('..')) return null;
  const override = LAYER_OF_FILE[rel.replace(/\.js$/, '.ts')];
  if (override !== undefined) return override;
  const parts = rel.split('/');
  return parts.length > 1 ? parts[0]! : null;
}

// Static imports and re-exports (`import ... from`, `export ... from`, `import '...'`) and dynamic
// import('...') with a literal specifier; only relative specifiers can point into src/.
const SPECIFIER = /(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g;

function relativeImports(text: string): string[] {
  // Comments may mention paths; drop them first (a naive strip is enough for this codebase).
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  return [...code.matchAll(SPECIFIER)].map((m) => m[1]!);
}

const files = walk(SRC);

t.test('every folder under src/ has a layer', async (t) => {
  const folders = readdirSync(SRC).filter((n) => statSync(path.join(SRC, n)).isDirectory());
  const unplaced = folders.filter((f) => !rank.has(f));
  t.same(unplaced, [], `add these folders to LAYERS in ${path.basename(fileURLToPath(import.meta.url))}`);
});

t.test('no import reaches into a later layer', async (t) => {
  const violations: string[] = [];
  let checked = 0;
  for (const file of files) {
    const from = layerOf(file);
    if (from === null || !rank.has(from)) continue;
    for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
      const target = path.resolve(path.dirname(file), spec);
      const to = layerOf(target);
      if (to === null || to === from || !rank.has(to)) continue;
      checked++;
      if (rank.get(to)! > rank.get(from)!) {
        violations.push(`${path.relative(SRC, file)} (${from}) imports ${spec} (${to}, a later layer)`);
      }
    }
  }
  t.ok(checked > 0, `checked ${checked} cross-folder imports`);
  t.same(violations, [], 'imports run from later layers to earlier ones only');
});

t.test('the rule catches a back edge', async (t) => {
  // Self-check of the parser on a synthetic file: identity importing revocation must be caught.
  const specs = relativeImports([
    "import type { RevocationStore } from '../revocation/revocation-store.js';",
    "export { x } from '../x509/der.js';",
    "// import { y } from '../policy/decide.js';",
    "const m = await import('../cli/main.js');",
  ].join('\n'));
  t.same(specs, ['../revocation/revocation-store.js', '../x509/der.js', '../cli/main.js']);
  const file = path.join(SRC, 'identity', 'example.ts');
  const later = specs.filter((s) => rank.get(layerOf(path.resolve(path.dirname(file), s))!)! > rank.get('identity')!);
  t.same(later, ['../revocation/revocation-store.js', '../cli/main.js']);
});
