/*
 * mtls-preload.so: an LD_PRELOAD shim that gives wrk and h2load (which have no client-certificate option) a
 * client certificate. It wraps SSL_CTX_new() to load MTLS_CERT (PEM chain) and MTLS_KEY (PEM key,
 * default MTLS_CERT) into every new SSL_CTX, and SSL_connect() to drop any cached session before a
 * handshake, so that "Connection: close" load does a full handshake per connection (wrk would
 * otherwise offer its last session). MTLS_RESUME=1 keeps the session: resumed handshakes.
 * MTLS_WAIT_MS=N (keep-alive runs only): while a handshake waits for the server, wait up to N ms
 * in poll() instead of returning at once. wrk keeps a connecting socket registered for
 * "writable", which is always true, so it spins on SSL_connect until the server answers: with a
 * slow server that burns a core that the target needs on a small machine. Waiting serializes the
 * handshakes of the opening burst, which a keep-alive run does not measure anyway.
 * Same approach as ../shared/bench-anchors/tools/mtls-preload.c. No OpenSSL headers needed.
 * Build (bench/run.mjs does it): cc -O2 -shared -fPIC -o mtls-preload.so mtls-preload.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_method_st SSL_METHOD;
typedef struct ssl_st SSL;
typedef struct ssl_session_st SSL_SESSION;

static void *sym(const char *name) {
  void *p = dlsym(RTLD_NEXT, name);
  if (!p) {
    fprintf(stderr, "mtls-preload: symbol %s not found\n", name);
    abort();
  }
  return p;
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method) {
  static SSL_CTX *(*real)(const SSL_METHOD *);
  if (!real) real = (SSL_CTX * (*)(const SSL_METHOD *)) sym("SSL_CTX_new");
  SSL_CTX *ctx = real(method);
  const char *cert = getenv("MTLS_CERT");
  const char *key = getenv("MTLS_KEY");
  if (ctx && cert && *cert) {
    int (*use_chain)(SSL_CTX *, const char *) = (int (*)(SSL_CTX *, const char *))sym("SSL_CTX_use_certificate_chain_file");
    int (*use_key)(SSL_CTX *, const char *, int) = (int (*)(SSL_CTX *, const char *, int))sym("SSL_CTX_use_PrivateKey_file");
    if (use_chain(ctx, cert) != 1 || use_key(ctx, (key && *key) ? key : cert, 1 /* SSL_FILETYPE_PEM */) != 1) {
      fprintf(stderr, "mtls-preload: cannot load client certificate %s / key %s\n", cert, key ? key : cert);
      abort();
    }
  }
  return ctx;
}

static long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000L + t.tv_nsec / 1000000L;
}

int SSL_connect(SSL *s) {
  static int (*real)(SSL *);
  static int (*in_before)(const SSL *);
  static int (*set_session)(SSL *, SSL_SESSION *);
  static int (*get_error)(const SSL *, int);
  static int (*get_fd)(const SSL *);
  static int resume = -1;
  static int wait_ms = -1;
  if (!real) {
    real = (int (*)(SSL *))sym("SSL_connect");
    in_before = (int (*)(const SSL *))sym("SSL_in_before");
    set_session = (int (*)(SSL *, SSL_SESSION *))sym("SSL_set_session");
    get_error = (int (*)(const SSL *, int))sym("SSL_get_error");
    get_fd = (int (*)(const SSL *))sym("SSL_get_fd");
  }
  if (resume < 0) {
    const char *r = getenv("MTLS_RESUME");
    resume = (r && *r == '1');
  }
  if (wait_ms < 0) {
    const char *w = getenv("MTLS_WAIT_MS");
    wait_ms = w ? atoi(w) : 0;
    if (wait_ms < 0) wait_ms = 0;
  }
  if (!resume && in_before(s)) set_session(s, NULL);
  int r = real(s);
  if (wait_ms > 0) {
    long deadline = now_ms() + wait_ms;
    while (r != 1 && get_error(s, r) == 2 /* SSL_ERROR_WANT_READ */) {
      long left = deadline - now_ms();
      if (left <= 0) break;
      struct pollfd p = {get_fd(s), POLLIN, 0};
      if (poll(&p, 1, (int)left) <= 0) break;
      r = real(s);
    }
  }
  return r;
}
