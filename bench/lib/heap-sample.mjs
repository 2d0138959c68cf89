// Preloaded (`node --import`) into a target by `gateway-variants.mjs --alloc`: on SIGUSR2, V8's
// sampling heap profiler runs for HEAP_SAMPLE_MS, counting every 512 bytes allocated, objects the
// GC has already collected included (so short-lived garbage counts, which is most of what a
// request allocates). The requests started in that window are counted through diagnostics_channel
// (`http.server.request.start`, which node:http and node:https publish, and HTTP/1.1 on the
// gateway's node:http2 listener with allowHTTP1 too). Writes the profile, with `requests` added,
// to HEAP_SAMPLE_OUT.
import dc from 'node:diagnostics_channel';
import { Session } from 'node:inspector';
import { renameSync, writeFileSync } from 'node:fs';

const out = process.env.HEAP_SAMPLE_OUT;
const windowMs = Number(process.env.HEAP_SAMPLE_MS ?? 4000);
if (out) {
  const session = new Session();
  session.connect();
  const post = (method, params = {}) => new Promise((resolve, reject) => session.post(method, params, (err, res) => (err ? reject(err) : resolve(res))));
  let counting = false;
  let requests = 0;
  dc.subscribe('http.server.request.start', () => {
    if (counting) requests++;
  });
  process.on('SIGUSR2', async () => {
    if (counting) return;
    await post('HeapProfiler.enable');
    await post('HeapProfiler.startSampling', { samplingInterval: 512, includeObjectsCollectedByMinorGC: true, includeObjectsCollectedByMajorGC: true });
    counting = true;
    requests = 0;
    setTimeout(async () => {
      const { profile } = await post('HeapProfiler.stopSampling');
      counting = false;
      profile.requests = requests;
      // Written aside, then renamed: the harness polls for the file and must never read half of it.
      writeFileSync(`${out}.part`, JSON.stringify(profile));
      renameSync(`${out}.part`, out);
    }, windowMs);
  });
}
