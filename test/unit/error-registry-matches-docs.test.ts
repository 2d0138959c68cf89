// docs/errors.md and the error registry stay in step: every code documented with its status, and
// nothing documented that the code does not have.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { ERRORS } from '../../src/errors/registry.js';

t.test('docs/errors.md lists every registry code with its status', async (t) => {
  const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
  const rows = new Map<string, string>();
  for (const m of doc.matchAll(/^\| `(GW_ERR_[A-Z0-9_]+)` \| ([^|]+) \|/gm)) rows.set(m[1]!, m[2]!.trim());
  for (const [code, spec] of Object.entries(ERRORS)) {
    t.equal(rows.get(code), spec.status === null ? '–' : String(spec.status), `${code} documented with its status`);
  }
  for (const code of rows.keys()) t.ok(Object.hasOwn(ERRORS, code), `${code} in the docs exists in the registry`);
});
