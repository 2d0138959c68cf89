/**
 * The file watch behind automatic reloads: the config file and every file it names (certificates,
 * keys, CA bundles, the ticket key file) are checked for changes and a change triggers a reload.
 * CRL files are not watched here: their revocation stores watch them and swap their own index.
 *
 * A change is a different (realpath, inode, size, mtime) signature, so a Kubernetes Secret or
 * ConfigMap update (the `..data` symlink swap) and an editor that replaces the file both count.
 * Polling is the mechanism of record; fs.watch on the parent directories only shortens the delay
 * (watches are lost on some filesystems and when a directory is replaced). Changes are debounced,
 * so writing a certificate and then its key costs one reload, not two.
 */
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { fileSignature } from '../config/file-signature.js';
import type { GatewayConfig } from '../config/schema.js';

/** Every file a configuration names, except CRL sources (their stores watch those). */
export function filesNamedBy(config: GatewayConfig): string[] {
  const files = [config.tls.cert, config.tls.key, config.tls.clientCA];
  if (config.tls.sessionTickets.keyFile !== undefined) files.push(config.tls.sessionTickets.keyFile);
  for (const u of Object.values(config.upstreams)) files.push(u.tls.cert, u.tls.key, u.tls.ca);
  return [...new Set(files)];
}

/** A missing or unreadable file has a signature too: its appearance is a change. */
async function signature(file: string): Promise<string> {
  try {
    return await fileSignature(file);
  } catch (err) {
    return `missing:${(err as NodeJS.ErrnoException).code ?? 'error'}`;
  }
}

export interface ConfigFileWatchOptions {
  readonly logger: Logger;
  /** How often the files are checked without a watch event. */
  readonly pollIntervalMs: number;
  /** Quiet period after a change before the reload runs. */
  readonly debounceMs: number;
  /** Runs the reload; the watch list is re-read from `files()` afterwards. */
  readonly onChange: (changed: readonly string[]) => Promise<void>;
}

export class ConfigFileWatch {
  readonly #opts: ConfigFileWatchOptions;
  #files: string[] = [];
  #signatures = new Map<string, string>();
  #watchers: FSWatcher[] = [];
  #timer: NodeJS.Timeout | null = null;
  #debounce: NodeJS.Timeout | null = null;
  #checking = false;
  #stopped = false;

  constructor(opts: ConfigFileWatchOptions) {
    this.#opts = opts;
  }

  /** Starts watching `files` (taking their current state as the baseline). */
  async start(files: readonly string[]): Promise<void> {
    await this.#setFiles(files);
    this.#timer = setInterval(() => void this.#check(), this.#opts.pollIntervalMs);
    this.#timer.unref();
  }

  /** Replaces the watched set after a reload (the new config may name other files). */
  async setFiles(files: readonly string[]): Promise<void> {
    if (!this.#stopped) await this.#setFiles(files);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    if (this.#debounce) clearTimeout(this.#debounce);
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
  }

  async #setFiles(files: readonly string[]): Promise<void> {
    this.#files = [...files];
    const sigs = new Map<string, string>();
    for (const f of this.#files) sigs.set(f, await signature(f));
    this.#signatures = sigs;
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    for (const dir of new Set(this.#files.map((f) => path.dirname(f)))) {
      try {
        const w = watch(dir, { persistent: false }, () => this.#soon());
        w.on('error', () => undefined);
        this.#watchers.push(w);
      } catch {
        /* polling covers it */
      }
    }
  }

  #soon(): void {
    if (this.#stopped || this.#debounce) return;
    this.#debounce = setTimeout(() => {
      this.#debounce = null;
      void this.#check();
    }, this.#opts.debounceMs);
    this.#debounce.unref();
  }

  async #check(): Promise<void> {
    if (this.#checking || this.#stopped) return;
    this.#checking = true;
    try {
      const changed: string[] = [];
      for (const f of this.#files) {
        const sig = await signature(f);
        if (sig !== this.#signatures.get(f)) changed.push(f);
      }
      if (changed.length === 0) return;
      // Let a burst of writes (certificate, then key) settle before reading any of it.
      await new Promise((r) => setTimeout(r, this.#opts.debounceMs).unref());
      this.#opts.logger.info({ event: 'config-files-changed', files: changed }, 'configuration files changed; reloading');
      // The baseline moves before the reload, so a file that stays bad is not retried in a loop;
      // the next change to it triggers the next attempt.
      for (const f of this.#files) this.#signatures.set(f, await signature(f));
      await this.#opts.onChange(changed);
    } catch (err) {
      this.#opts.logger.error({ event: 'config-watch-failed', err }, 'checking the configuration files failed');
    } finally {
      this.#checking = false;
    }
  }
}
