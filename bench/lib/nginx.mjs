// nginx configs, rendered into bench/.work/run/<name>/: the mTLS upstream (origin) and the reference
// mTLS proxy, equivalent to ../shared/bench-anchors/targets/{upstream,nginx}.sh. The proxy does the
// gateway's job: client certificate required and verified (depth 2, CRLs of both levels),
// authorization on the subject DN (CN=billing, OU=payments; nginx 1.22 has no SAN variable),
// X-Forwarded-For and an identity header, mTLS to the upstream with verification and keep-alive.
// Both also offer h2 (the h2 scenario); the gRPC reference proxy (grpc scenario) is nginxGrpcProxyConf.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const ECHO_MODULE = '/usr/lib/nginx/modules/ngx_http_echo_module.so';

function common(dir, workers, conns) {
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  // As root the workers would drop to "nobody" and could not read bench/.work; keep them as root.
  const user = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `${user}worker_processes ${workers};
worker_rlimit_nofile ${conns * 2 + 1024};
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections ${conns + 1024}; }
`;
}

/**
 * How this nginx turns on HTTP/2 (h2 by ALPN, beside HTTP/1.1): a `listen ... http2` parameter up
 * to 1.25.0, the `http2 on;` directive from 1.25.1 (where the parameter is deprecated).
 */
function http2Syntax() {
  const v = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(spawnSync('nginx', ['-v'], { encoding: 'utf8' }).stderr ?? '');
  const [maj, min, patch] = v ? v.slice(1).map(Number) : [0, 0, 0];
  const directive = maj > 1 || (maj === 1 && (min > 25 || (min === 25 && patch >= 1)));
  return directive ? { param: '', directive: '    http2 on;\n' } : { param: ' http2', directive: '' };
}

/**
 * The listener every server shares: TLS with h2 offered by ALPN (HTTP/1.1 clients are unaffected;
 * the h2 and grpc scenarios use it), client certificates required (depth 2) and checked against
 * the CRLs.
 */
function mtlsListen(port, cert, key, pki) {
  const h2 = http2Syntax();
  return `    listen 127.0.0.1:${port} ssl${h2.param};
${h2.directive}    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    ssl_client_certificate ${pki.caBundle};
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_crl ${pki.crlBundle};
`;
}

export function nginxUpstreamConf({ dir, port, workers, pki, maxConns }) {
  const www = join(dir, 'www');
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, '64k'), Buffer.alloc(65536, 'x'));
  const body = 'ok ' + '.'.repeat(97);
  const echo = existsSync(ECHO_MODULE);
  // POST /post must read the whole body before answering, as an application would; plain `return`
  // answers first and discards the body later. That needs the echo module (libnginx-mod-http-echo).
  const post = echo
    ? 'location = /post { echo_read_request_body; echo "received $content_length bytes"; }'
    : 'location = /post { return 200 "received $content_length bytes\\n"; }';
  const conf = `${echo ? `load_module ${ECHO_MODULE};\n` : ''}${common(dir, workers, maxConns)}http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path ${dir}/tmp/body;
  client_max_body_size 1m;
  client_body_buffer_size 128k;
  open_file_cache max=16;
  default_type text/plain;
  server {
${mtlsListen(port, pki.upstreamCert, pki.upstreamKey, pki)}    location = / { return 200 "${body}"; }
    location = /64k { root ${www}; default_type application/octet-stream; }
    ${post}
    location = /echo {
      return 200 "x-forwarded-for=$http_x_forwarded_for\\nx-client-subject=$http_x_client_subject\\nx-forwarded-client-cert=$http_x_forwarded_client_cert\\ntls-peer=$ssl_client_s_dn\\n";
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  return { conf: join(dir, 'nginx.conf'), echo };
}

/**
 * accessLog: one buffered `combined` record per request to <dir>/access.log (the nginx-log target,
 * to compare with the gateway at its default log level, which writes one access record per request);
 * otherwise no access log.
 */
export function nginxProxyConf({ dir, port, workers, pki, upstreamPort, servername, maxConns, accessLog = false }) {
  const conf = `${common(dir, workers, maxConns)}http {
  access_log ${accessLog ? `${dir}/access.log combined buffer=64k flush=1s` : 'off'};
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  client_max_body_size 1m;
  client_body_buffer_size 128k;
  proxy_buffer_size 16k;
  proxy_buffers 16 16k;
  map $ssl_client_s_dn $authz_ok {
    default 0;
    "~^CN=billing,OU=payments(,|$)" 1;
  }
  upstream backend {
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
${mtlsListen(port, pki.serverCert, pki.serverKey, pki)}    location / {
      if ($authz_ok = 0) { return 403 "forbidden\\n"; }
      proxy_pass https://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Client-Subject $ssl_client_s_dn;
      proxy_set_header X-Client-Serial $ssl_client_serial;
      proxy_ssl_certificate ${pki.gwClientCert};
      proxy_ssl_certificate_key ${pki.gwClientKey};
      proxy_ssl_trusted_certificate ${pki.caBundle};
      proxy_ssl_verify on;
      proxy_ssl_verify_depth 2;
      proxy_ssl_crl ${pki.crlBundle};
      proxy_ssl_server_name on;
      proxy_ssl_name ${servername};
      proxy_ssl_session_reuse on;
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  return { conf: join(dir, 'nginx.conf') };
}

/**
 * nginx as the gRPC reference proxy of the grpc scenario: the same client side as nginxProxyConf
 * (mTLS, CRLs, authorization on the subject DN, identity header), and grpc_pass over mTLS (h2,
 * verified, CRLs) to the gRPC origin, with upstream keep-alive. A refusal answers 403 (nginx has
 * no gRPC error mapping of its own without extra configuration).
 */
export function nginxGrpcProxyConf({ dir, port, workers, pki, upstreamPort, servername, maxConns }) {
  const conf = `${common(dir, workers, maxConns)}http {
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 300s;
  client_body_temp_path ${dir}/tmp/body;
  map $ssl_client_s_dn $authz_ok {
    default 0;
    "~^CN=billing,OU=payments(,|$)" 1;
  }
  upstream grpc_backend {
    server 127.0.0.1:${upstreamPort};
    keepalive 128;
    keepalive_requests 1000000;
    keepalive_timeout 60s;
  }
  server {
${mtlsListen(port, pki.serverCert, pki.serverKey, pki)}    location / {
      if ($authz_ok = 0) { return 403 "forbidden\n"; }
      grpc_pass grpcs://grpc_backend;
      grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      grpc_set_header X-Client-Subject $ssl_client_s_dn;
      grpc_ssl_certificate ${pki.gwClientCert};
      grpc_ssl_certificate_key ${pki.gwClientKey};
      grpc_ssl_trusted_certificate ${pki.caBundle};
      grpc_ssl_verify on;
      grpc_ssl_verify_depth 2;
      grpc_ssl_crl ${pki.crlBundle};
      grpc_ssl_server_name on;
      grpc_ssl_name ${servername};
      grpc_ssl_session_reuse on;
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  return { conf: join(dir, 'nginx.conf') };
}

export function nginxArgs(dir) {
  return ['-p', dir, '-e', join(dir, 'error.log'), '-c', join(dir, 'nginx.conf'), '-g', 'daemon off;'];
}
