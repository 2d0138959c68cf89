// DNS discovery: answers become sorted https:// origins (IPv6 bracketed), an unchanged answer is
// not reported again, a failure or an empty answer keeps the last good set (reported as a
// failure), a resolver that hangs does not hold up start(), and resolutions never overlap.
import t from 'tap';
import { DnsDiscovery, MAX_DISCOVERED_TARGETS, originFor } from '../../src/proxy/dns-discovery.js';

function discovery(lookup: (host: string) => Promise<readonly string[]>) {
  const changes: string[][] = [];
  const failures: string[] = [];
  const d = new DnsDiscovery({
    name: 'orders.svc',
    port: 9443,
    refreshMs: 3_600_000,
    lookup,
    events: { changed: (o) => changes.push([...o]), failed: (e) => failures.push((e as { code?: string }).code ?? e.message) },
  });
  return { d, changes, failures };
}

t.test('origins', async (t) => {
  t.equal(originFor('10.0.0.1', 9443), 'https://10.0.0.1:9443');
  t.equal(originFor('fd00::1', 9443), 'https://[fd00::1]:9443');
  t.equal(originFor('10.0.0.1', 443), 'https://10.0.0.1', 'the default port is dropped, as URL.origin does');
});

t.test('changes, repeats, failures and empty answers', async (t) => {
  let answer: readonly string[] | Error = ['10.0.0.2', '10.0.0.1', '10.0.0.1'];
  const { d, changes, failures } = discovery(async () => {
    if (answer instanceof Error) throw answer;
    return answer;
  });
  t.teardown(() => d.stop());
  await d.resolve();
  t.strictSame(changes, [['https://10.0.0.1:9443', 'https://10.0.0.2:9443']], 'sorted, without duplicates');
  await d.resolve();
  t.equal(changes.length, 1, 'the same answer is not reported again');
  answer = Object.assign(new Error('boom'), { code: 'ESERVFAIL' });
  await d.resolve();
  answer = [];
  await d.resolve();
  t.strictSame(failures, ['ESERVFAIL', 'ENODATA'], 'a failure and an empty answer are failures');
  t.equal(changes.length, 1, 'and change nothing');
  answer = ['10.0.0.3'];
  await d.resolve();
  t.strictSame(changes.at(-1), ['https://10.0.0.3:9443']);
  t.equal(d.resolutions, 3);
});

t.test('a hanging resolver does not hold up start, and resolutions do not overlap', async (t) => {
  let calls = 0;
  const { d } = discovery(() => {
    calls++;
    return new Promise(() => {});
  });
  t.teardown(() => d.stop());
  const started = Date.now();
  await d.start(100);
  t.ok(Date.now() - started < 1_000, 'start returned after its bound');
  void d.resolve();
  void d.resolve();
  t.equal(calls, 1, 'a resolution still running is joined, not repeated');
});

t.test('a hostile answer: not addresses, or far too many', async (t) => {
  t.throws(() => originFor('evil.example', 443), /not an IP address/, 'a name is not an address');
  let answer: readonly string[] = ['not an address', '10.0.0.1'];
  const truncated: number[] = [];
  const changes: string[][] = [];
  const failures: string[] = [];
  const d = new DnsDiscovery({
    name: 'orders.svc',
    port: 9443,
    refreshMs: 3_600_000,
    lookup: async () => answer,
    events: { changed: (o) => changes.push([...o]), failed: (e) => failures.push(e.message), truncated: (n) => truncated.push(n) },
  });
  t.teardown(() => d.stop());
  await d.resolve();
  t.equal(changes.length, 0, 'an answer with something that is not an address is refused whole');
  t.equal(failures.length, 1);
  answer = Array.from({ length: 5000 }, (_, i) => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
  await d.resolve();
  t.strictSame(truncated, [5000], 'the cut is reported');
  t.equal(changes.at(-1)!.length, MAX_DISCOVERED_TARGETS, 'at most MAX_DISCOVERED_TARGETS targets');
});
