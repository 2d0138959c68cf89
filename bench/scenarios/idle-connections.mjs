// Scenario 4: memory per idle keep-alive mTLS connection. For each target a fresh instance is started
// (a process that already went through the other scenarios would reuse memory it freed and hide the
// cost), warmed up with 100 connections, and then the Node generator opens --idle-conns connections
// (TLS handshake + one GET each, 100 at a time, bounded in time) and keeps them idle. The target's
// resident memory, summed over its process group, is read before, while held and after release.
// Also reported: the target's CPU per opened connection (handshake + one request).
import { CLK_TCK, groupRssKb, groupTicks, openFilesLimit } from '../lib/cpu.mjs';
import { sleep } from '../lib/procs.mjs';

export const id = 'idle';
export const title = 'Idle keep-alive mTLS connections: memory per connection';

function lines(stream, onLine) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      onLine(line);
    }
  });
}

/** Opens `conns` connections to the target and keeps them; `whileHeld` runs before release. */
async function hold(ctx, t, { conns, resume, openDeadlineS, whileHeld }) {
  const child = ctx.gens.spawnHold({ port: t.port, path: '/', conns, resume, openConcurrency: 100, openDeadlineS, holdMaxS: 120, servername: 'localhost' }, conns + 1024);
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const events = [];
  let notify = null;
  const exited = new Promise((r) => child.once('exit', r));
  lines(child.stdout, (line) => {
    try {
      events.push(JSON.parse(line));
      notify?.();
    } catch {
      stderr += line;
    }
  });
  const next = (event, ms) =>
    new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${t.name}: no "${event}" from the generator in ${ms} ms: ${stderr.slice(0, 300)}`)), ms);
      const check = () => {
        const e = events.find((x) => x.event === event);
        if (e) {
          clearTimeout(timer);
          notify = null;
          resolve(e);
        }
      };
      notify = check;
      check();
      exited.then(() => setTimeout(check, 50));
    });
  try {
    const held = await next('held', (openDeadlineS + 30) * 1000);
    const during = whileHeld ? await whileHeld(held) : null;
    child.stdin.write('release\n');
    const released = await next('released', 30_000);
    await exited;
    return { held, released, during };
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
}

async function measureTarget(ctx, t, resume) {
  let want = ctx.opts.idleConns;
  const warnings = [];
  const limit = openFilesLimit(t.pid);
  // nginx raises its own limit (worker_rlimit_nofile); its master's limit says nothing about workers.
  if (!t.kind.startsWith('nginx') && limit !== null && limit < want + 512) {
    want = Math.max(0, limit - 512);
    warnings.push(`${t.name}: open-files limit ${limit}, holding ${want} connections`);
  }
  const openDeadlineS = ctx.opts.quick ? 30 : 90;
  // Warm-up: code paths, TLS contexts and the upstream pool exist before the baseline is read.
  await hold(ctx, t, { conns: 100, resume, openDeadlineS: 20 });
  await sleep(1500);
  const rssBefore = groupRssKb(t.pgid);
  const ticks0 = groupTicks([t.pgid]).get(t.pgid);
  let ticks1 = 0;
  let rssHeld = 0;
  const { held, released } = await hold(ctx, t, {
    conns: want,
    resume,
    openDeadlineS,
    whileHeld: async () => {
      ticks1 = groupTicks([t.pgid]).get(t.pgid);
      await sleep(2000);
      rssHeld = groupRssKb(t.pgid);
    },
  });
  await sleep(2000);
  const rssAfter = groupRssKb(t.pgid);
  const row = {
    target: t.name.replace(/-idle$/, ''),
    wanted: ctx.opts.idleConns,
    resume,
    held: held.held,
    failed: held.failed,
    reused: held.reused,
    openS: held.openS,
    openRate: held.rate,
    genCpuPerConnUs: held.held > 0 ? (held.cpuS * 1e6) / held.held : null,
    targetCpuPerConnUs: held.held > 0 ? (((ticks1 - ticks0) / CLK_TCK) * 1e6) / held.held : null,
    rssBeforeKb: rssBefore,
    rssHeldKb: rssHeld,
    rssAfterKb: rssAfter,
    kbPerConn: held.held > 0 ? (rssHeld - rssBefore) / held.held : null,
    closedWhileHeld: released.closedWhileHeld,
    errorKinds: held.errorKinds,
    warnings: [...warnings, ...(held.warnings ?? [])],
  };
  ctx.log(
    `idle ${row.target.padEnd(8)} held ${row.held}/${want} (failed ${row.failed}, resumed ${row.reused}) in ${row.openS.toFixed(1)} s (${row.openRate.toFixed(0)}/s); ` +
      `RSS ${(rssBefore / 1024).toFixed(1)} -> ${(rssHeld / 1024).toFixed(1)} MB = ${row.kbPerConn?.toFixed(1)} KB/conn; after release ${(rssAfter / 1024).toFixed(1)} MB`,
  );
  for (const w of row.warnings) ctx.log(`WARNING: ${w}`);
  return row;
}

export async function run(ctx) {
  const rows = [];
  const resume = ctx.opts.idleResume;
  for (const name of ctx.mainTargets) {
    const fresh = `${name}-idle`;
    try {
      if (name === 'direct') await ctx.targets.startUpstream(ctx.targets.upstreamKind, fresh);
      else await ctx.targets.startTarget(name, fresh);
      rows.push(await measureTarget(ctx, ctx.targets.get(fresh), resume));
    } catch (err) {
      ctx.log(`idle ${name}: ${err.message}`);
      ctx.notes.push(`idle connections, ${name}: ${err.message}`);
    } finally {
      await ctx.targets.stop(fresh);
    }
  }
  ctx.extra.idle = rows;
}
