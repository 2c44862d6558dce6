/*
 * The geo redirect with wasi-libc: clients whose GeoIP region is CN-BJ get
 * cdn-bj.example.com, everyone else cdn-global.example.com. Unlike
 * ../geo_redirect.c it uses libc: malloc for the host's buffers and printf,
 * whose output reaches the server log through WASI fd_write.
 *
 * Build (Debian: clang, lld, wasi-libc, libclang-rt-14-dev-wasm32):
 *   clang --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor \
 *     -I examples/plugins/wasm -o geo_wasi.wasm \
 *     examples/plugins/wasm/c-wasi/geo_redirect.c
 * (-mexec-model=reactor: no main; the host calls _initialize first.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnspolicy_plugin.h"

static const char BJ[] = "cdn-bj.example.com";
static const char GLOBAL[] = "cdn-global.example.com";

enum { REGION_CAP = 64 };
static char *region;
static unsigned long queries;

int32_t dnspolicy_abi_version(void) { return DNSPOLICY_ABI_VERSION; }

/* The host's allocations (config, query buffer) come from malloc. */
int32_t dnspolicy_alloc(int32_t len) {
  if (len <= 0)
    return 0;
  return (int32_t)(uintptr_t)malloc((size_t)len);
}

int32_t dnspolicy_init(const char *cfg_json, int32_t len) {
  (void)cfg_json;
  region = malloc(REGION_CAP);
  if (region == NULL)
    return 1;
  printf("c-wasi geo_redirect ready (%d bytes of config)\n", (int)len);
  fflush(stdout);
  return 0;
}

int32_t dnspolicy_process(const dnspolicy_ctx *ctx, int32_t len) {
  (void)len;
  queries++;
  int32_t n = dp_geo_region(0, 0, region, REGION_CAP);
  const char *target = (n == 5 && memcmp(region, "CN-BJ", 5) == 0) ? BJ : GLOBAL;
  if (ctx->qname_len > 0 && queries == 1) {
    printf("first query: %.*s -> %s\n", (int)ctx->qname_len, ctx->qname, target);
    fflush(stdout);
  }
  if (dp_set_answer(target, (int32_t)strlen(target), DNSPOLICY_TYPE_A, 300) != 0)
    return DNSPOLICY_PASS;
  return DNSPOLICY_DECIDED;
}

void dnspolicy_destroy(void) { free(region); }
