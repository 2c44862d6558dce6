// The geo redirect in C++ with wasi-libc and libc++, without exceptions:
// clients whose GeoIP region is CN-BJ get cdn-bj.example.com, everyone
// else cdn-global.example.com.
//
// Build (Debian: clang, lld, wasi-libc, libclang-rt-14-dev-wasm32,
// libc++-14-dev-wasm32, libc++abi-14-dev-wasm32):
//   clang++ --target=wasm32-wasi --sysroot=/usr -std=c++17 -O2 \
//     -fno-exceptions -mexec-model=reactor -I examples/plugins/wasm \
//     -o geo_cpp.wasm examples/plugins/wasm/cpp-wasi/geo_redirect.cpp
#include <cstdio>
#include <cstdlib>
#include <new>
#include <string_view>

extern "C" {
#include "dnspolicy_plugin.h"
}

namespace {

constexpr std::string_view kBeijing = "cdn-bj.example.com";
constexpr std::string_view kGlobal = "cdn-global.example.com";

// Picks the CDN for the client the host describes.
class Router {
 public:
  std::string_view Route() {
    int32_t n = dp_geo_region(nullptr, 0, region_, sizeof region_);
    if (n < 0 || n > static_cast<int32_t>(sizeof region_)) return kGlobal;
    return std::string_view(region_, static_cast<size_t>(n)) == "CN-BJ" ? kBeijing : kGlobal;
  }

 private:
  char region_[64] = {};
};

Router* router = nullptr;

}  // namespace

extern "C" {

int32_t dnspolicy_abi_version(void) { return DNSPOLICY_ABI_VERSION; }

int32_t dnspolicy_alloc(int32_t len) {
  if (len <= 0) return 0;
  return static_cast<int32_t>(reinterpret_cast<uintptr_t>(std::malloc(static_cast<size_t>(len))));
}

int32_t dnspolicy_init(const char*, int32_t) {
  router = new (std::nothrow) Router();
  if (router == nullptr) return 1;
  std::printf("cpp-wasi geo_redirect ready\n");
  std::fflush(stdout);
  return 0;
}

int32_t dnspolicy_process(const dnspolicy_ctx*, int32_t) {
  std::string_view target = router->Route();
  if (dp_set_answer(target.data(), static_cast<int32_t>(target.size()), DNSPOLICY_TYPE_A, 300) != 0)
    return DNSPOLICY_PASS;
  return DNSPOLICY_DECIDED;
}

void dnspolicy_destroy(void) {
  delete router;
  router = nullptr;
}

}  // extern "C"
