/**
 * DNS discovery (timers): resolves a name's A and AAAA records every `refresh` and hands the fleet
 * the set of origins `https://ADDRESS:PORT` (Envoy's STRICT_DNS, HAProxy's server-template).
 * A failed resolution, or one that returns no address, keeps the last good set: it is logged and
 * counted, never turned into an empty fleet. The lookup is injected, so tests (and a hosts-style
 * resolver) can stand in for DNS; by default it is the system resolver (`dns.lookup`, which also
 * reads /etc/hosts), as Node's own connections use.
 */
import { lookup as systemLookup } from 'node:dns/promises';
import { isIP, isIPv6 } from 'node:net';

/** Returns every address of `host`. */
export type DnsLookup = (host: string) => Promise<readonly string[]>;

export const defaultDnsLookup: DnsLookup = async (host) => (await systemLookup(host, { all: true, order: 'ipv4first' })).map((a) => a.address);

/** As many targets as a `targets` list may hold: an answer beyond it is cut (and reported). */
export const MAX_DISCOVERED_TARGETS = 1024;

export interface DiscoveryEvents {
  /** A resolution answered with a different set of origins. */
  changed(origins: readonly string[]): void;
  failed(err: Error): void;
  /** An answer held more than MAX_DISCOVERED_TARGETS addresses; the first ones (sorted) are used. */
  truncated?(addresses: number): void;
}

export function originFor(address: string, port: number): string {
  if (isIP(address) === 0) throw Object.assign(new Error(`the resolver returned ${JSON.stringify(address.slice(0, 100))}, not an IP address`), { code: 'EBADRESP' });
  return new URL(`https://${isIPv6(address) ? `[${address}]` : address}:${port}`).origin;
}

export class DnsDiscovery {
  readonly #name: string;
  readonly #port: number;
  readonly #refreshMs: number;
  readonly #lookup: DnsLookup;
  readonly #events: DiscoveryEvents;
  #timer: NodeJS.Timeout | null = null;
  #last = '';
  #stopped = false;
  #resolutions = 0;
  #inFlight: Promise<void> | null = null;

  constructor(opts: { name: string; port: number; refreshMs: number; lookup: DnsLookup; events: DiscoveryEvents }) {
    this.#name = opts.name;
    this.#port = opts.port;
    this.#refreshMs = opts.refreshMs;
    this.#lookup = opts.lookup;
    this.#events = opts.events;
  }

  get resolutions(): number {
    return this.#resolutions;
  }

  /**
   * Resolves once now, then every refresh. Returns when the first answer (or failure) is in, or
   * after `firstWithinMs` at most: a resolver that hangs must not hold up startup or a reload
   * (the fleet serves 503 GW_ERR_UPSTREAM_UNAVAILABLE until an answer arrives).
   */
  async start(firstWithinMs = 5_000): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.resolve(), new Promise<void>((resolve) => (timer = setTimeout(resolve, firstWithinMs)))]);
    clearTimeout(timer);
    this.#next();
  }

  #next(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => void this.resolve().then(() => this.#next()), this.#refreshMs);
    this.#timer.unref();
  }

  /** One resolution (joining one still running); never rejects. */
  resolve(): Promise<void> {
    this.#inFlight ??= this.#resolve().finally(() => (this.#inFlight = null));
    return this.#inFlight;
  }

  async #resolve(): Promise<void> {
    let origins: string[];
    try {
      const addresses = await this.#lookup(this.#name);
      origins = [...new Set(addresses.map((a) => originFor(a, this.#port)))].sort();
      if (origins.length === 0) throw Object.assign(new Error(`${this.#name} resolved to no address`), { code: 'ENODATA' });
      if (origins.length > MAX_DISCOVERED_TARGETS) {
        this.#events.truncated?.(origins.length);
        origins = origins.slice(0, MAX_DISCOVERED_TARGETS);
      }
    } catch (err) {
      if (!this.#stopped) this.#events.failed(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    if (this.#stopped) return;
    this.#resolutions++;
    const key = origins.join(' ');
    if (key === this.#last) return;
    this.#last = key;
    this.#events.changed(origins);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
