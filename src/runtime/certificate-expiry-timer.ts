/**
 * Expiry warnings for the gateway's own certificates and the CAs it trusts, as the revocation
 * stores give them for CRLs: `certificate-expiring` once per certificate when it is within the
 * warning window (14 days), and `certificate-expired` once it has expired. Checked at start, after
 * every reload and hourly (this module's timer). The same dates are metrics
 * (mtls_gateway_certificate_expiration_timestamp_seconds) for alerting.
 */
import type { Logger } from 'pino';
import type { CertificateInfo } from '../telemetry/metrics.js';

export const CERTIFICATE_WARN_BEFORE_MS = 14 * 86_400_000;
const CHECK_EVERY_MS = 3_600_000;

export class CertificateExpiryTimer {
  readonly #warned = new Set<string>();
  readonly #timer: NodeJS.Timeout;

  constructor(
    private readonly certificates: () => readonly CertificateInfo[],
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {
    this.#timer = setInterval(() => this.check(), CHECK_EVERY_MS);
    this.#timer.unref();
    this.check();
  }

  check(): void {
    const now = this.now();
    for (const c of this.certificates()) {
      const left = c.notAfter.getTime() - now;
      const state = left <= 0 ? 'expired' : left <= CERTIFICATE_WARN_BEFORE_MS ? 'expiring' : null;
      if (state === null) continue;
      const key = `${c.role}:${c.upstream ?? ''}:${c.serial}:${state}`;
      if (this.#warned.has(key)) continue;
      this.#warned.add(key);
      this.logger.warn(
        { event: `certificate-${state}`, role: c.role, upstream: c.upstream, subject: c.subject, serial: c.serial, notAfter: c.notAfter.toISOString(), daysLeft: Math.max(0, Math.floor(left / 86_400_000)) },
        state === 'expired' ? 'certificate has expired; replace it' : 'certificate expires soon; rotate it',
      );
    }
  }

  stop(): void {
    clearInterval(this.#timer);
  }
}
