// Child process for the log writer's exit test: logs LINES records through the gateway's logger
// with a buffer larger than all of them, then calls process.exit() at once. Whatever is still
// buffered must be written on the way out.
import { createGatewayLogger } from '../../src/log/gateway-logger.js';

const lines = Number(process.argv[2] ?? 300);
const logger = createGatewayLogger({ level: 'info', bufferBytes: 65_536, flushInterval: 60_000 }, 1);
for (let i = 0; i < lines; i++) logger.info({ event: 'exit-test', i }, 'line');
process.exit(Number(process.argv[3] ?? 0));
