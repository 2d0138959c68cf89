/**
 * A plain-HTTP request to the admin listener: status, headers, body and the body parsed as JSON
 * (undefined when it is not JSON). A fresh connection per request.
 */
import http from 'node:http';

export interface AdminResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json: any;
}

export function adminRequest(port: number, method: string, path: string, timeoutMs = 10_000): Promise<AdminResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`admin ${method} ${path} timed out`)));
    req.end();
  });
}
