/*
 * dnspolicy_plugin.h: the WASM plugin ABI, version 1, for C plugin authors.
 * The full contract is in grammar/WASM-ABI.md.
 *
 * A plugin exports memory (wasm-ld does by default) and the five functions
 * declared at the end; it may import the host functions below, and from
 * WASI only the allow-list of grammar/WASM-ABI.md.
 *
 * Build with Debian's clang and lld, no libc:
 *   clang --target=wasm32 -nostdlib -O2 -Wl,--no-entry -o plugin.wasm plugin.c
 */
#ifndef DNSPOLICY_PLUGIN_H
#define DNSPOLICY_PLUGIN_H

#include <stdint.h>

#define DNSPOLICY_ABI_VERSION 1

#define DNSPOLICY_IMPORT(name) \
  __attribute__((import_module("dnspolicy"), import_name(#name)))
#define DNSPOLICY_EXPORT(name) __attribute__((export_name(#name)))

/* process() results; anything else is a plugin error. */
#define DNSPOLICY_PASS 0    /* no decision: the next plugin gets the query */
#define DNSPOLICY_DECIDED 1 /* decided through the host calls below */

/* Record types and rcodes the calls take. */
#define DNSPOLICY_TYPE_ANY 0 /* set_answer: the type follows the target */
#define DNSPOLICY_TYPE_A 1
#define DNSPOLICY_TYPE_CNAME 5
#define DNSPOLICY_TYPE_TXT 16
#define DNSPOLICY_TYPE_AAAA 28
#define DNSPOLICY_RCODE_NOERROR 0 /* no data */
#define DNSPOLICY_RCODE_SERVFAIL 2
#define DNSPOLICY_RCODE_NXDOMAIN 3
#define DNSPOLICY_RCODE_REFUSED 5

/* The query, as written at ctx_ptr before each process() (little-endian). */
typedef struct dnspolicy_ctx {
  uint32_t abi_version; /* 1 */
  uint16_t qtype;
  uint16_t qclass;      /* 1 = IN */
  uint8_t transport;    /* 0 = UDP, 1 = TCP */
  uint8_t flags;        /* DNSPOLICY_FLAG_* */
  uint16_t qname_len;
  uint32_t reserved;
  char qname[];         /* canonical: lowercase, no trailing dot, no NUL */
} dnspolicy_ctx;

#define DNSPOLICY_FLAG_RD 1
#define DNSPOLICY_FLAG_DO 2
#define DNSPOLICY_FLAG_ECS 4

/*
 * Calls that fill a buffer return the full length of the value and write it
 * only when it fits in `cap`. An address argument of length 0 means the
 * client (the ECS address when the query has one); 4 or 16 bytes name
 * another address. A pointer outside memory aborts the call.
 */
DNSPOLICY_IMPORT(get_qname) int32_t dp_get_qname(char *buf, int32_t cap);
DNSPOLICY_IMPORT(get_qtype) int32_t dp_get_qtype(void);
DNSPOLICY_IMPORT(get_client_ip) int32_t dp_get_client_ip(uint8_t *buf, int32_t cap);
DNSPOLICY_IMPORT(get_source_ip) int32_t dp_get_source_ip(uint8_t *buf, int32_t cap);
/* Address bytes then the source prefix length; 0 without ECS. */
DNSPOLICY_IMPORT(get_ecs) int32_t dp_get_ecs(uint8_t *buf, int32_t cap);
DNSPOLICY_IMPORT(geo_region)
int32_t dp_geo_region(const uint8_t *ip, int32_t ip_len, char *buf, int32_t cap);
DNSPOLICY_IMPORT(geo_country)
int32_t dp_geo_country(const uint8_t *ip, int32_t ip_len, char *buf, int32_t cap);
DNSPOLICY_IMPORT(geo_city)
int32_t dp_geo_city(const uint8_t *ip, int32_t ip_len, char *buf, int32_t cap);
DNSPOLICY_IMPORT(geo_asn) int64_t dp_geo_asn(const uint8_t *ip, int32_t ip_len);

/* Decisions: 0 on success, -1 when the host refuses an argument. */
DNSPOLICY_IMPORT(set_answer)
int32_t dp_set_answer(const char *target, int32_t len, int32_t rtype, int32_t ttl);
DNSPOLICY_IMPORT(add_record)
int32_t dp_add_record(const char *name, int32_t name_len, int32_t rtype,
                      const char *rdata, int32_t rdata_len, int32_t ttl);
DNSPOLICY_IMPORT(set_rcode) int32_t dp_set_rcode(int32_t rcode);
DNSPOLICY_IMPORT(drop) int32_t dp_drop(void);
DNSPOLICY_IMPORT(truncate) int32_t dp_truncate(void);
DNSPOLICY_IMPORT(forward) int32_t dp_forward(const char *pool, int32_t len);
/* level: 0 debug, 1 info, 2 warn, 3 error. */
DNSPOLICY_IMPORT(log) void dp_log(int32_t level, const char *msg, int32_t len);
/* -1: the variable is missing. */
DNSPOLICY_IMPORT(get_var)
int32_t dp_get_var(const char *path, int32_t len, char *buf, int32_t cap);
/* A whole verdict as JSON (what compiled policies use); rule index or -1. */
DNSPOLICY_IMPORT(set_verdict)
int32_t dp_set_verdict(const char *json, int32_t len, int32_t rule);
/* 1 match, 0 no match, -1 bad pattern (Rust regex syntax, unanchored). */
DNSPOLICY_IMPORT(regex_match)
int32_t dp_regex_match(const char *pattern, int32_t plen, const char *s, int32_t slen);

/*
 * For compiled policies (modules with a `dnspolicy.fields` section): a
 * context field (its slot) or injected variable (1000 + i) in binary form,
 * -1 when missing; and a value verdict computed at run time. Type codes:
 */
#define DNSPOLICY_VALUE_BOOL 0
#define DNSPOLICY_VALUE_INT 1
#define DNSPOLICY_VALUE_STRING 2
#define DNSPOLICY_VALUE_NAME 3
#define DNSPOLICY_VALUE_IP 4
#define DNSPOLICY_VALUE_CIDR 5
#define DNSPOLICY_VALUE_QTYPE 6
DNSPOLICY_IMPORT(get_field) int32_t dp_get_field(int32_t id, void *buf, int32_t cap);
DNSPOLICY_IMPORT(set_value)
int32_t dp_set_value(int32_t type, const void *value, int32_t len, int32_t rule);

/* What the plugin exports. */
DNSPOLICY_EXPORT(dnspolicy_abi_version) int32_t dnspolicy_abi_version(void);
DNSPOLICY_EXPORT(alloc) int32_t dnspolicy_alloc(int32_t len);
DNSPOLICY_EXPORT(init) int32_t dnspolicy_init(const char *cfg_json, int32_t len);
DNSPOLICY_EXPORT(process) int32_t dnspolicy_process(const dnspolicy_ctx *ctx, int32_t len);
DNSPOLICY_EXPORT(destroy) void dnspolicy_destroy(void);

#endif
