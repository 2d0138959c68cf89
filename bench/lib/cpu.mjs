// CPU and memory accounting from /proc (Linux only): process-group CPU ticks, the harness's own and
// its waited-for children's ticks (how a generator child's CPU is measured after it exits), the
// machine's busy ticks, and resident memory.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let hz = 100;
try {
  hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  // getconf missing: 100 is the Linux user-space ABI value on every common architecture.
}
export const CLK_TCK = hz;

/** Fields of /proc/<pid>/stat from field 3 (state) on; field N is at index N - 3. */
function statFields(text) {
  return text.slice(text.lastIndexOf(')') + 2).split(' ');
}

function readStat(pid) {
  try {
    return statFields(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

function numericDirs() {
  return readdirSync('/proc').filter((d) => d.charCodeAt(0) >= 48 && d.charCodeAt(0) <= 57);
}

/** Pids of the live members of a process group. */
export function groupPids(pgid) {
  const out = [];
  for (const pid of numericDirs()) {
    const f = readStat(pid);
    if (f !== null && Number(f[2]) === pgid) out.push(Number(pid));
  }
  return out;
}

/** utime + stime (ticks) of the live members of each process group, in one /proc scan. */
export function groupTicks(pgids) {
  const want = new Map(pgids.filter((p) => p != null).map((p) => [p, 0]));
  if (want.size === 0) return want;
  for (const pid of numericDirs()) {
    const f = readStat(pid);
    if (f === null) continue;
    const pg = Number(f[2]);
    if (want.has(pg)) want.set(pg, want.get(pg) + Number(f[11]) + Number(f[12]));
  }
  return want;
}

/** This process's own CPU ticks and those of its children that have exited and were waited for. */
export function selfTicks() {
  const f = readStat('self');
  return { self: Number(f[11]) + Number(f[12]), children: Number(f[13]) + Number(f[14]) };
}

/** utime + stime (ticks) of one live process, all its threads included (null if gone). */
export function processTicks(pid) {
  const f = readStat(pid);
  return f === null ? null : Number(f[11]) + Number(f[12]);
}

/** Busy ticks of the whole machine (user, nice, system, irq, softirq, steal), summed over CPUs. */
export function machineBusyTicks() {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  return v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
}

/** Resident set size of one process, in KiB (0 if gone). */
export function rssKb(pid) {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** Summed RSS of a process group, in KiB. */
export function groupRssKb(pgid) {
  return groupPids(pgid).reduce((a, pid) => a + rssKb(pid), 0);
}

/** Soft limit on open files of a process (Infinity for "unlimited"). */
export function openFilesLimit(pid) {
  try {
    const m = /Max open files\s+(\S+)\s+(\S+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    if (!m) return null;
    return m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch {
    return null;
  }
}

/** Busy cores over a short window (for the quiet-wait before a measurement). */
export async function busyCores(ms = 500) {
  const a = machineBusyTicks();
  const t = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const b = machineBusyTicks();
  return (b - a) / CLK_TCK / ((performance.now() - t) / 1000);
}
