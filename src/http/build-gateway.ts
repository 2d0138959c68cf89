/**
 * The gateway facade: assembles the gateway without listening, so that tests, the CLI and the
 * demo share one wiring. It loads the material, creates the long-lived revocation stores, builds
 * the first runtime snapshot (src/runtime) and puts the data plane (src/dataplane) on a listener.
 * One request's path is in docs/architecture.md.
 */
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/schema.js';
import { recordPresentedChainLengths } from '../identity/presented-chain.js';
import { loadGatewayMaterial } from '../pki/gateway-material.js';
import { readFileFromDisk, type ReadFileFn } from '../pki/tls-material.js';
import type { ParseCrlsFn, RevocationStore } from '../revocation/revocation-store.js';
import { ConnectionRegistry } from '../dataplane/connection-registry.js';
import { Http1Handler } from '../dataplane/http1-handler.js';
import { createListener, type GatewayApp } from '../dataplane/listener.js';
import { buildSnapshot } from '../runtime/build-snapshot.js';
import { createRevocationStores } from '../runtime/revocation-stores.js';
import { Runtime } from '../runtime/runtime.js';

export interface GatewayDeps {
  readonly config: GatewayConfig;
  readonly logger: Logger;
  /** Wall clock in ms; injectable so validity re-checks can be tested. */
  readonly now?: () => number;
  readonly readFile?: ReadFileFn;
  /** CRL file parser; the default parses big files off the event loop. */
  readonly parseCrls?: ParseCrlsFn;
}

export interface Gateway {
  readonly app: GatewayApp;
  /** Revocation stores: `clients` and one per upstream that has CRL sources. */
  readonly revocation: ReadonlyMap<string, RevocationStore>;
  /** Starts listening on config.listen; resolves with the bound address. */
  listen(): Promise<AddressInfo>;
  /** Re-reads every CRL source now (SIGHUP); a bad file keeps the last good state. */
  reload(reason: string): Promise<void>;
  close(): Promise<void>;
}

export async function buildGateway(deps: GatewayDeps): Promise<Gateway> {
  const { config, logger } = deps;
  const now = deps.now ?? Date.now;
  const read = deps.readFile ?? readFileFromDisk;

  // Load and check everything before anything listens: a bad file stops startup, naming its key.
  const material = await loadGatewayMaterial(config, read, new Date(now()));
  const registry = new ConnectionRegistry(logger);
  const snapshot = buildSnapshot(config, {
    generation: 1,
    material,
    now,
    revocation: (m) =>
      createRevocationStores(config, m, {
        logger,
        now,
        parse: deps.parseCrls,
        // After the client CRLs changed, every live connection is judged again.
        onClientsChange: () => registry.rejudge(runtime.current),
        // After an upstream's CRLs changed, later requests run on connections verified against them.
        onUpstreamChange: (name) => runtime.current.upstreams.get(name)?.renew(),
      }),
  });
  const runtime = new Runtime(snapshot, { afterSwap: (next) => registry.rejudge(next) });
  const byDomain = snapshot.revocation.byDomain;
  for (const store of byDomain.values()) await store.loadInitial();
  // tls.maxChainLength needs the number of certificates each client presented. Node 24.21 reads
  // them itself during the handshake and discards them (nodejs/node#65579); this keeps the count,
  // process-wide and idempotent, observing a call Node already makes (src/identity/presented-chain.ts).
  recordPresentedChainLengths();

  const handler = new Http1Handler(runtime, logger);
  const app = createListener({ config, logger, runtime, registry, handler });
  for (const store of byDomain.values()) store.start();

  return {
    app,
    revocation: byDomain,
    async listen() {
      // Fastify cannot tell that the server it was handed speaks TLS; its line would say http://.
      await app.listen({ host: config.listen.host, port: config.listen.port, listenTextResolver: (address) => `Server listening at ${address.replace(/^http:/, 'https:')}` });
      return app.server.address() as AddressInfo;
    },
    async reload(reason: string) {
      await Promise.all([...byDomain.values()].map((s) => s.reload(reason)));
    },
    async close() {
      await Promise.all([...byDomain.values()].map((s) => s.stop()));
      await app.close();
      await Promise.all([...runtime.current.upstreams.values()].map((u) => u.close()));
    },
  };
}
