// A request no route matches gets 404 GW_ERR_ROUTE_NOT_FOUND; prefixes match on segment boundaries.
import t from 'tap';
import { startStack } from '../helpers/harness.js';

t.test('unknown route gets 404', async (t) => {
  const s = await startStack();
  t.teardown(() => s.close());
  for (const path of ['/', '/nothing', '/ordersx', '/order', '/ORDERS']) {
    const res = await s.send(s.pki.clients['billing']!, { path });
    t.equal(res.status, 404, path);
    t.match(res.json, { error: { code: 'GW_ERR_ROUTE_NOT_FOUND' } });
  }
  t.equal((await s.send(s.pki.clients['billing']!, { path: '/orders' })).status, 200, 'the prefix itself matches');
  t.equal(s.upstream.seen.length, 1);
});
