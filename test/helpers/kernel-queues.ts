/**
 * Bytes the kernel holds in the send and receive queues of established TCP connections, from
 * /proc/net/tcp and /proc/net/tcp6 (Linux): the `tx_queue` and `rx_queue` columns, which count
 * bytes written and not yet acknowledged and bytes received and not yet read. For tests that
 * must tell what a process holds in its own memory from what loopback's socket buffers hold:
 * Linux autotunes those buffers up to `net.ipv4.tcp_rmem`'s maximum (32 MB on the reference VM),
 * so a count taken at the sender measures the kernel as much as the process.
 *
 * Null when /proc/net/tcp cannot be read (not Linux, or /proc not mounted).
 */
import { readFileSync } from 'node:fs';

const ESTABLISHED = '01';

/** Sum of both queues over the established connections with a local or remote port in `ports`. */
export function kernelQueuedBytes(ports: readonly number[]): number | null {
  let readable = false;
  let sum = 0;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    readable = true;
    // "sl local_address rem_address st tx_queue:rx_queue ...", addresses as HEXIP:HEXPORT.
    for (const line of text.split('\n').slice(1)) {
      const col = line.trim().split(/\s+/);
      if (col.length < 5 || col[3] !== ESTABLISHED) continue;
      const local = Number.parseInt(col[1]!.slice(col[1]!.lastIndexOf(':') + 1), 16);
      const remote = Number.parseInt(col[2]!.slice(col[2]!.lastIndexOf(':') + 1), 16);
      if (!ports.includes(local) && !ports.includes(remote)) continue;
      const [tx, rx] = col[4]!.split(':').map((h) => Number.parseInt(h, 16));
      sum += (tx ?? 0) + (rx ?? 0);
    }
  }
  return readable ? sum : null;
}
