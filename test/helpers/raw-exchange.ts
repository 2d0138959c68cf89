/**
 * Raw exchanges: bytes written on a real TLS connection exactly as given (no client library to
 * fix up the request line, the headers or the framing), and what came back until the server
 * closed or the timeout passed.
 */
import tls from 'node:tls';

export interface RawCredentials {
  readonly ca: string;
  readonly cert?: string;
  readonly key?: string;
}

export interface RawOutcome {
  /** Everything the server sent, latin1. */
  readonly text: string;
  /** True when the server closed the connection (false: our timeout ended it). */
  readonly closedByServer: boolean;
  /** Status codes of the responses in `text`, in order. */
  readonly statuses: number[];
}

export function rawExchange(port: number, creds: RawCredentials, payload: string | Buffer, opts: { timeoutMs?: number; endAfterWrite?: boolean } = {}): Promise<RawOutcome> {
  return new Promise((resolve) => {
    let text = '';
    let timedOut = false;
    const sock = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: creds.ca, ...(creds.cert ? { cert: creds.cert, key: creds.key } : {}) }, () => {
      if (opts.endAfterWrite === false) sock.write(payload);
      else sock.end(payload);
    });
    sock.on('data', (c: Buffer) => (text += c.toString('latin1')));
    sock.on('error', () => undefined);
    sock.on('close', () => resolve({ text, closedByServer: !timedOut, statuses: statusesIn(text) }));
    sock.setTimeout(opts.timeoutMs ?? 5_000, () => {
      timedOut = true;
      sock.destroy();
    });
  });
}

export function statusesIn(text: string): number[] {
  return [...text.matchAll(/(?:^|\r\n)HTTP\/1\.[01] (\d{3}) /g)].map((m) => Number(m[1]));
}

/** The JSON body of the first response in `text`, or undefined. */
export function firstJsonBody(text: string): unknown {
  const head = text.indexOf('\r\n\r\n');
  if (head < 0) return undefined;
  const len = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, head));
  const body = len ? text.slice(head + 4, head + 4 + Number(len[1])) : text.slice(head + 4);
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}
