// Preloaded (`node --import`) into a target by `gateway-variants.mjs --alloc`: on SIGUSR2, V8's
// sampling heap profiler runs for HEAP_SAMPLE_MS, counting every 512 bytes allocated, objects the
// GC has already collected included (so short-lived garbage counts, which is most of what a
// request allocates). Writes the profile, with `windowMs` (the sampled window as it ran) added, to
// HEAP_SAMPLE_OUT; the harness divides by the requests its generator served in that window.
// Requests are not counted here through node:http's diagnostics channel
// (`http.server.request.start`) as they were: a subscriber there keeps the gateway's bodiless
// requests off its lean exchange (src/dataplane/lean-exchange.ts), which would then not be measured.
import { Session } from 'node:inspector';
import { renameSync, writeFileSync } from 'node:fs';

const out = process.env.HEAP_SAMPLE_OUT;
const windowMs = Number(process.env.HEAP_SAMPLE_MS ?? 4000);
if (out) {
  const session = new Session();
  session.connect();
  const post = (method, params = {}) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  let counting = false;
  process.on('SIGUSR2', async () => {
    if (counting) return;
    counting = true;
    await post('HeapProfiler.enable');
    await post('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true });
    const from = performance.now();
    setTimeout(async () => {
      const { profile } = await post('HeapProfiler.stopSampling');
      counting = false;
      profile.windowMs = performance.now() - from;
      // Written aside, then renamed: the harness polls for the file and must never read half of it.
      writeFileSync(`${out}.part`, JSON.stringify(profile));
      renameSync(`${out}.part`, out);
    }, windowMs);
  });
}
