/*
 * The geo redirect of examples/plugins/dns/geo_redirect.lua in C: clients
 * whose GeoIP region is CN-BJ get cdn-bj.example.com, everyone else
 * cdn-global.example.com.
 *
 *   clang --target=wasm32 -nostdlib -O2 -Wl,--no-entry \
 *     -o geo_redirect_c.wasm examples/plugins/wasm/geo_redirect.c
 */
#include "dnspolicy_plugin.h"

static const char BJ[] = "cdn-bj.example.com";
static const char GLOBAL[] = "cdn-global.example.com";

/* The host allocates twice per instance (config, then the query buffer). */
static unsigned char heap[8192] __attribute__((aligned(8)));
static int32_t top;

int32_t dnspolicy_abi_version(void) { return DNSPOLICY_ABI_VERSION; }

int32_t dnspolicy_alloc(int32_t len) {
  if (len < 0 || len > (int32_t)sizeof heap - top)
    return 0;
  int32_t need = (len + 7) & ~7;
  if (need > (int32_t)sizeof heap - top)
    return 0;
  int32_t p = (int32_t)(uintptr_t)(heap + top);
  top += need;
  return p;
}

int32_t dnspolicy_init(const char *cfg_json, int32_t len) {
  (void)cfg_json;
  (void)len;
  return 0;
}

static int same(const char *a, int32_t n, const char *b) {
  for (int32_t i = 0; i < n; i++)
    if (a[i] != b[i] || b[i] == 0)
      return 0;
  return b[n] == 0;
}

int32_t dnspolicy_process(const dnspolicy_ctx *ctx, int32_t len) {
  (void)ctx;
  (void)len;
  char region[64];
  int32_t n = dp_geo_region(0, 0, region, sizeof region);
  if (n <= (int32_t)sizeof region && same(region, n, "CN-BJ"))
    dp_set_answer(BJ, sizeof BJ - 1, DNSPOLICY_TYPE_A, 300);
  else
    dp_set_answer(GLOBAL, sizeof GLOBAL - 1, DNSPOLICY_TYPE_A, 300);
  return DNSPOLICY_DECIDED;
}

void dnspolicy_destroy(void) {}
