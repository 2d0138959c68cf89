// config/gateway.schema.json (for editors) is generated from the zod schema; this keeps the
// committed copy in step. Regenerate with `npm run schema`.
import { readFile } from 'node:fs/promises';
import t from 'tap';
import { configJsonSchema } from '../../src/cli/config-commands.js';

t.test('committed JSON Schema matches the zod schema', async (t) => {
  const committed = JSON.parse(await readFile(new URL('../../config/gateway.schema.json', import.meta.url), 'utf8')) as unknown;
  t.same(committed, configJsonSchema(), 'run `npm run schema` after changing src/config/schema.ts');
});
