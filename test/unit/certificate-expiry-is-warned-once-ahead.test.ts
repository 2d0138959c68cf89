/**
 * The gateway warns ahead of the expiry of its own certificates and the CAs it trusts, as it does
 * for CRLs: certificate-expiring once inside 14 days, certificate-expired once after notAfter,
 * nothing for a certificate far from expiry, and never the same warning twice.
 */
import t from 'tap';
import { pino } from 'pino';
import { CertificateExpiryTimer } from '../../src/runtime/certificate-expiry-timer.js';
import type { CertificateInfo } from '../../src/telemetry/metrics.js';

const DAY = 86_400_000;

t.test('expiring and expired certificates are warned about once', async (t) => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  let now = Date.parse('2026-12-01T00:00:00Z');
  const certs: CertificateInfo[] = [
    { role: 'server', subject: 'CN=gateway', serial: '01', notAfter: new Date(now + 10 * DAY) },
    { role: 'client-ca', subject: 'CN=Root', serial: '02', notAfter: new Date(now + 400 * DAY) },
    { role: 'upstream-client', subject: 'CN=gw', serial: '03', notAfter: new Date(now - DAY), upstream: 'orders' },
  ];
  const timer = new CertificateExpiryTimer(() => certs, logger, () => now);
  t.teardown(() => timer.stop());
  const events = () => lines.map((l) => `${String(l['event'])} ${String(l['role'])} ${String(l['serial'])}`);
  t.same(events(), ['certificate-expiring server 01', 'certificate-expired upstream-client 03'], 'at start: one warning each, none for the CA');
  t.match(lines[0], { level: 40, daysLeft: 10, notAfter: '2026-12-11T00:00:00.000Z', subject: 'CN=gateway' });
  t.match(lines[1], { upstream: 'orders', daysLeft: 0 });
  timer.check();
  t.equal(lines.length, 2, 'checking again repeats nothing');
  now += 11 * DAY;
  timer.check();
  t.same(events().slice(2), ['certificate-expired server 01'], 'the server certificate expired since: one more warning');
});
