/**
 * Reload: validate, then swap. A reload reads the config file again, loads every certificate, key,
 * CA bundle and ticket key it names, compiles the policy, loads and validates the CRLs of every
 * revocation store whose sources changed, and builds the complete next snapshot: the same code as
 * startup and `config check`. Only when all of it succeeded is the snapshot swapped in (one
 * assignment in Runtime). Any failure leaves the snapshot in force untouched, is logged as
 * `reload-refused` with the config key and the reason, and is reported to the caller (/reload,
 * /status, metrics).
 *
 * Reloads are coalesced: a trigger while one runs schedules one more run after it, shared by every
 * trigger that arrived meanwhile, so a burst of file events costs at most two reloads.
 */
import { createSecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/schema.js';
import { isGatewayError } from '../errors/registry.js';
import { loadGatewayMaterial } from '../pki/gateway-material.js';
import type { ReadFileFn } from '../pki/tls-material.js';
import type { RevocationStore } from '../revocation/revocation-store.js';
import { buildSnapshot, type SnapshotDeps } from './build-snapshot.js';
import { reviseOcspStores, type OcspStoreDeps } from './ocsp-stores.js';
import type { OcspStore } from '../revocation/ocsp-store.js';
import { reviseRevocationStores, type RevocationStoreDeps } from './revocation-stores.js';
import type { Runtime } from './runtime.js';
import type { RuntimeSnapshot } from './snapshot.js';
import type { LastReload } from './state-view.js';

export interface ReloadResult {
  readonly result: 'success' | 'failure';
  /** The generation in force after the reload (unchanged on failure). */
  readonly generation: number;
  readonly error?: { readonly code: string; readonly message: string; readonly key: string | null };
}

export interface ReloaderDeps {
  readonly runtime: Runtime;
  readonly logger: Logger;
  readonly now: () => number;
  readonly readFile: ReadFileFn;
  /** Reads and validates the configuration again (the config file, or the one given in tests). */
  readonly loadConfig: () => Promise<GatewayConfig>;
  readonly ticketKeys: Buffer;
  /** How new revocation stores are made (logger, parser, change hooks). */
  readonly storeDeps: RevocationStoreDeps;
  /** How new OCSP stores are made. */
  readonly ocspDeps: OcspStoreDeps;
  /** What new upstream fleets need (DNS lookup, where they report). */
  readonly fleet: SnapshotDeps['fleet'];
  /** After every attempt: metrics and /status. */
  readonly onResult?: (result: ReloadResult, record: LastReload) => void;
}

/**
 * Config keys a running gateway cannot change: the sockets it listens on and what is fixed when
 * they are created. A reload that changes one is refused, naming it.
 */
const RESTART_KEYS: ReadonlyArray<{ readonly key: string; readonly get: (c: GatewayConfig) => unknown }> = [
  { key: 'listen', get: (c) => c.listen },
  { key: 'admin', get: (c) => c.admin },
  { key: 'tls.handshakeTimeout', get: (c) => c.tls.handshakeTimeout },
  { key: 'server.maxHeaderSize', get: (c) => c.server.maxHeaderSize },
  { key: 'server.engine', get: (c) => c.server.engine },
  { key: 'log.bufferBytes', get: (c) => c.log.bufferBytes },
  { key: 'log.flushInterval', get: (c) => c.log.flushInterval },
];

/** The first config key that differs and cannot change live, or null. */
export function restartNeededFor(running: GatewayConfig, next: GatewayConfig): string | null {
  for (const k of RESTART_KEYS) {
    if (JSON.stringify(k.get(next)) !== JSON.stringify(k.get(running))) return k.key;
  }
  return null;
}

export class RestartNeeded extends Error {
  readonly code = 'GW_ERR_CONFIG_INVALID';
  constructor(readonly key: string) {
    super(`${key}: cannot change while the gateway runs; restart it to apply this change (the running configuration stays in force)`);
  }
}

/** What a refused reload reports (/reload, /status, the log): a stable code, the reason, the key. */
export function describeReloadError(err: unknown): { code: string; message: string; key: string | null } {
  const e = err as { code?: unknown; message?: unknown };
  const code = isGatewayError(err) || err instanceof RestartNeeded ? err.code : typeof e?.code === 'string' && e.code.startsWith('GW_ERR_') ? e.code : 'GW_ERR_CONFIG_INVALID';
  return { code, message: typeof e?.message === 'string' ? e.message : String(err), key: keyOf(err) };
}

/** The config key a failure names, if any: ConfigError's first issue, a material error's key. */
function keyOf(err: unknown): string | null {
  const e = err as { key?: unknown; issues?: ReadonlyArray<{ path: string }>; detail?: { key?: unknown } };
  if (typeof e?.key === 'string') return e.key;
  if (Array.isArray(e?.issues) && e.issues.length > 0) return e.issues[0]!.path || null;
  if (typeof e?.detail?.key === 'string') return e.detail.key;
  return null;
}

export class Reloader {
  readonly #deps: ReloaderDeps;
  #running: Promise<ReloadResult> | null = null;
  #queued: { promise: Promise<ReloadResult>; triggers: string[] } | null = null;
  #last: LastReload | null = null;

  constructor(deps: ReloaderDeps) {
    this.#deps = deps;
  }

  /** The last reload's outcome, or null before the first. */
  get last(): LastReload | null {
    return this.#last;
  }

  /** Runs a reload (or joins the one queued behind the one running). Never rejects. */
  reload(trigger: string): Promise<ReloadResult> {
    if (this.#running === null) {
      this.#running = this.#run(trigger).finally(() => {
        this.#running = null;
      });
      return this.#running;
    }
    if (this.#queued !== null) {
      this.#queued.triggers.push(trigger);
      return this.#queued.promise;
    }
    const triggers = [trigger];
    const promise = this.#running.then(() => {
      this.#queued = null;
      return this.reload(triggers.join(','));
    });
    this.#queued = { promise, triggers };
    return promise;
  }

  async #run(trigger: string): Promise<ReloadResult> {
    const { runtime, logger, now } = this.#deps;
    const started = now();
    const previous = runtime.current;
    let created: readonly RevocationStore[] = [];
    let retired: readonly RevocationStore[] = [];
    let retiredOcsp: readonly OcspStore[] = [];
    let built: RuntimeSnapshot | null = null;
    try {
      const config = await this.#deps.loadConfig();
      const fixed = restartNeededFor(previous.config, config);
      if (fixed !== null) throw new RestartNeeded(fixed);
      const material = await loadGatewayMaterial(config, this.#deps.readFile, new Date(now()));
      const next = (built = buildSnapshot(config, {
        generation: previous.generation + 1,
        material,
        now,
        ticketKeys: this.#deps.ticketKeys,
        fleet: this.#deps.fleet,
        previous,
        revocation: (m) => {
          const change = reviseRevocationStores(config, m, previous.revocation, this.#deps.storeDeps);
          created = change.created;
          retired = change.retired;
          return change.stores;
        },
        ocsp: (m) => {
          const change = reviseOcspStores(config, m, previous.ocsp, this.#deps.ocspDeps);
          retiredOcsp = change.retired;
          return change.stores;
        },
      }));
      // New CRL sources load (and are validated) before anything changes; a refused CRL file
      // refuses the reload as it refuses startup.
      for (const store of created) await store.loadInitial();
      // New fleets resolve their discovery names and start their health checks before they carry
      // a request; kept ones are running already.
      await Promise.all([...next.upstreams].filter(([name, u]) => previous.upstreams.get(name) !== u).map(([, u]) => u.start()));
      // The listener's context is built here once as a check: setSecureContext runs after the
      // swap, where a throw would leave the new snapshot in force with the old context.
      if (next.serverTls !== previous.serverTls) createSecureContext(next.serverTls);
      runtime.swap(next);
      for (const store of created) store.start();
      for (const store of retired) void store.stop();
      for (const store of retiredOcsp) store.stop();
      // Stores kept from the previous snapshot re-read their sources too: a reload means every input.
      const kept = [...next.revocation.byDomain.values()].filter((s) => !created.includes(s));
      await Promise.all(kept.map((s) => s.reload(trigger)));
      for (const [name, u] of previous.upstreams) {
        if (next.upstreams.get(name) !== u) void u.retire();
      }
      if (logger.level !== config.log.level) logger.level = config.log.level;
      const durationMs = now() - started;
      logger.info({ event: 'reload', trigger, generation: next.generation, previous: previous.generation, durationMs, newStores: created.length, retiredUpstreams: [...previous.upstreams].filter(([n, u]) => next.upstreams.get(n) !== u).map(([n]) => n) }, 'configuration reloaded');
      return this.#record(trigger, started, { result: 'success', generation: next.generation }, null);
    } catch (err) {
      for (const store of created) void store.stop();
      // OCSP stores made for the refused snapshot hold at most lookups it started; stop them.
      if (built !== null) for (const s of [built.ocsp.clients, ...built.ocsp.upstreams.values()]) if (s !== null && s !== previous.ocsp.clients && ![...previous.ocsp.upstreams.values()].includes(s)) s.stop();
      // Pools made for the refused snapshot never carried a request; close them all the same.
      if (built !== null) for (const [name, u] of built.upstreams) if (previous.upstreams.get(name) !== u) void u.close();
      const { code, message, key } = describeReloadError(err);
      logger.error({ event: 'reload-refused', trigger, code, key, reason: message, generation: previous.generation }, 'reload refused; the running configuration stays in force');
      return this.#record(trigger, started, { result: 'failure', generation: previous.generation, error: { code, message, key } }, { code, message, key });
    }
  }

  #record(trigger: string, started: number, result: ReloadResult, error: LastReload['error']): ReloadResult {
    const record: LastReload = { at: new Date(this.#deps.now()).toISOString(), result: result.result, trigger, generation: result.generation, durationMs: this.#deps.now() - started, error };
    this.#last = record;
    this.#deps.onResult?.(result, record);
    return result;
  }
}
