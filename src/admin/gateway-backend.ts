/**
 * The admin endpoints of one gateway process (no workers): readiness, status, metrics and reload
 * straight from the gateway facade.
 */
import type { Gateway } from '../http/build-gateway.js';
import type { AdminBackend } from './admin-server.js';

export function gatewayAdminBackend(gateway: Gateway): AdminBackend {
  return {
    readiness: () => gateway.readiness(),
    status: () => gateway.status(),
    metrics: async () => ({ contentType: gateway.metrics.contentType, body: await gateway.metrics.text() }),
    reload: (trigger) => gateway.reload(trigger),
  };
}
