// Scenario 5: the gateway with a big client CRL against no CRL. One gateway per variant runs at the
// same time (no CRL; root CRL + an intermediate CRL of 100k / 1M entries from makeBigCrlDer, the
// revoked client's serial among them), and the variants are measured interleaved: full handshakes
// and keep-alive GET. Startup time and resident memory after startup are recorded too. Whatever the
// gateway does with tls.crl (today: hands it to OpenSSL, which re-verifies it on every handshake
// that consults it) is what gets measured.
import { ensureBigCrl } from '../lib/pki.mjs';
import { groupRssKb } from '../lib/cpu.mjs';
import { interleaved } from '../lib/measure.mjs';
import { checkTarget } from '../lib/checks.mjs';

export const id = 'crl';
export const title = 'Client CRL size: none, 100k, 1M entries';

export function sizeName(n) {
  return n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}M` : n >= 1e3 && n % 1e3 === 0 ? `${n / 1e3}k` : String(n);
}

export async function run(ctx) {
  const variants = [{ name: 'gateway-crl-none', crl: 'none', entries: 0 }];
  for (const n of ctx.opts.crlSizes) variants.push({ name: `gateway-crl-${sizeName(n)}`, crl: await ensureBigCrl(ctx.checkout, ctx.workDir, ctx.pki, n, ctx.log), entries: n });
  const info = [];
  try {
    for (const v of variants) {
      const p = await ctx.targets.startGateway(v.name, { crl: v.crl });
      const rssKb = groupRssKb(p.pgid);
      let revokedRefused = null;
      if (v.entries > 0) {
        const c = await checkTarget(ctx.pki, v.name, p.port);
        revokedRefused = c.results.find((r) => r.what.startsWith('revoked'))?.ok ?? null;
        if (!c.ok) ctx.notes.push(`${v.name}: functional checks failed: ${c.results.filter((r) => !r.ok).map((r) => `${r.what}: ${r.detail}`).join('; ')}`);
      }
      info.push({ target: v.name, entries: v.entries, startupMs: p.startupMs, rssKb, revokedRefused });
    }
    const names = variants.map((v) => v.name);
    const rounds = Math.min(ctx.opts.rounds, 2);
    await interleaved(ctx, { scenario: id, label: 'CRL: full handshake per request', targets: names, spec: { kind: 'hs', path: '/', method: 'GET', conns: ctx.opts.conns, servername: 'localhost' }, rounds });
    // Keep-alive with the connections opened before the clock (Node generator, preconnect): with a big
    // CRL the opening burst of handshakes would otherwise dominate a short run.
    const ka = { kind: 'ka', tool: 'node', preconnect: true, path: '/', method: 'GET', conns: ctx.opts.conns, servername: 'localhost' };
    await interleaved(ctx, { scenario: id, label: 'CRL: keep-alive GET 100 B', targets: names, spec: ka, rounds });
  } finally {
    for (const v of variants) await ctx.targets.stop(v.name);
  }
  ctx.extra.crl = info;
}
