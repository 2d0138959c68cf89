// What the report records about the machine and the software under test.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';

function run(cmd, args, { strict = false } = {}) {
  // nginx -v and ab -V print to stderr, wrk -v even exits 1: take both streams, any exit code.
  const r = spawnSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error || (strict && r.status !== 0)) return null;
  const out = `${r.stdout ?? ''}${r.stderr ?? ''}`.trim();
  return out || null;
}

export function which(cmd) {
  const out = run('sh', ['-c', `command -v ${cmd}`], { strict: true });
  return out && out.startsWith('/') ? out : null;
}

export function machineInfo(checkout, nodeBin = null) {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /model name\s*:\s*(.+)/.exec(cpuinfo)?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown';
  const commit = run('git', ['-C', checkout, 'rev-parse', '--short', 'HEAD'], { strict: true });
  const dirty = run('git', ['-C', checkout, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'package.json'], { strict: true });
  let pkgVersion = null;
  try {
    pkgVersion = JSON.parse(readFileSync(`${checkout}/package.json`, 'utf8')).version;
  } catch {
    // not a checkout with a package.json
  }
  return {
    date: new Date().toISOString(),
    cpuModel: model,
    cores: os.availableParallelism?.() ?? os.cpus().length,
    memGiB: +(os.totalmem() / 2 ** 30).toFixed(1),
    kernel: `${os.type()} ${os.release()}`,
    // The gateway's Node (--node), which may differ from the one running the harness.
    node: nodeBin ? run(nodeBin, ['-p', 'process.version'], { strict: true }) ?? `? (${nodeBin})` : process.version,
    openssl: nodeBin ? run(nodeBin, ['-p', 'process.versions.openssl'], { strict: true }) ?? '?' : process.versions.openssl,
    nginx: which('nginx') ? run('nginx', ['-v'])?.replace(/^.*nginx\//, '') : null,
    wrk: which('wrk') ? run('wrk', ['-v'])?.split('\n')[0]?.replace(/ \[.*$/, '') : null,
    ab: which('ab') ? run('ab', ['-V'])?.split('\n')[0]?.replace(/^This is /, '').replace(/ <.*$/, '') : null,
    gateway: `mtls-gateway ${pkgVersion ?? '?'} @ ${commit ?? 'no git'}${dirty ? ' (uncommitted changes in src/)' : ''}`,
    loadavg: os.loadavg().map((x) => x.toFixed(2)).join(' '),
  };
}
