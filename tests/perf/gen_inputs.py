#!/usr/bin/env python3
"""Writes dnspolicy's side of the peer benchmark from the kit's data.

usage: gen_inputs.py KIT_DATA_DIR OUT_DIR

The same policy, data and answers as the dnsdist configs in the kit:
  static       www.example.com A -> 192.0.2.1, anything else REFUSED
  gslb         the same answer from answer pools: three pools of three
               members, each health-checked by TCP connect (to the server's
               own port, 1 s apart); www.example.com picks `failover` from
               pool web, whose best member is 192.0.2.1 (dnspolicy only: the
               peer has no health-checked pools to compare)
  geo          www.example.com A -> 192.0.2.10 for CN-BJ clients (1 001-prefix
               table, 127.0.0.0/8 is CN-BJ), 192.0.2.20 for everyone else
  lua-geo      the same as a Lua plugin
  wasm-geo     the same as a WASM plugin (WAT)
  suffix-10k   any name under one of 10 000 suffixes -> that suffix's address
  suffix-100k  the same with 100 000 suffixes
"""
import os
import sys

data, out = sys.argv[1], sys.argv[2]


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


write(f"{out}/static/plugins/static.dsl",
      'if {query.name} == "www.example.com" && {query.type} == A { then answer A 192.0.2.1 ttl 60 }\n'
      "then refuse\n")

write(f"{out}/gslb/plugins/gslb.dsl",
      'rule www when {query.name} == "www.example.com" && {query.type} == A { then pool web failover ttl 60 }\n'
      'rule api when {query.name} == "api.example.com" { then pool api sticky {client.subnet} }\n'
      'rule img when {query.name} == "img.example.com" { then pool img weighted }\n'
      "then refuse\n")
port = os.environ.get("DP_PORT", "25310")
pools = ["[gslb]\nmax_ttl = 60\n"]
for i, name in enumerate(["web", "api", "img"]):
    members = ",\n".join(
        f'  {{ address = "192.0.{2 + i}.{m}", priority = {m}, check = "tcp://127.0.0.1:{port}" }}'
        for m in (1, 2, 3))
    pools.append(f"[pools.{name}]\nhealth = {{ interval = 1, fall = 2, rise = 2 }}\nmembers = [\n{members},\n]\n")
write(f"{out}/gslb/dnspolicy.toml", "\n".join(pools))

rows = ["cidr,country,region"]
with open(f"{data}/geo-prefixes.txt") as f:
    for line in f:
        parts = line.split()
        if len(parts) >= 2:
            cidr, region = parts[0], parts[1]
            rows.append(f"{cidr},{region.split('-')[0]},{region}")
write(f"{out}/geo/regions.csv", "\n".join(rows) + "\n")
write(f"{out}/geo/plugins/geo.dsl",
      'if {query.name} == "www.example.com" && {query.type} == A {\n'
      '    if {client.region} == "CN-BJ" { then answer A 192.0.2.10 ttl 60 }\n'
      '    else { then answer A 192.0.2.20 ttl 60 }\n'
      "}\n"
      "then refuse\n")

# The same geo policy as a Lua plugin (dnsdist's lua-geo scenario).
write(f"{out}/lua-geo/plugins/geo.lua",
      "function apply(ctx)\n"
      "  if ctx:get_qname() == \"www.example.com\" and ctx:get_qtype() == \"A\" then\n"
      "    if ctx:lookup_geo_region(ctx:get_client_ip()) == \"CN-BJ\" then\n"
      "      ctx:set_answer(\"192.0.2.10\", \"A\", 60)\n"
      "    else\n"
      "      ctx:set_answer(\"192.0.2.20\", \"A\", 60)\n"
      "    end\n"
      "  else\n"
      "    ctx:set_rcode(\"REFUSED\")\n"
      "  end\n"
      "end\n")

# The same again as a WASM plugin (WAT; dnspolicy compiles the text).
write(f"{out}/wasm-geo/plugins/geo.wat", r'''(module
  (import "dnspolicy" "geo_region" (func $geo_region (param i32 i32 i32 i32) (result i32)))
  (import "dnspolicy" "set_answer" (func $set_answer (param i32 i32 i32 i32) (result i32)))
  (import "dnspolicy" "set_rcode" (func $set_rcode (param i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "CN-BJ")
  (data (i32.const 32) "www.example.com")
  (data (i32.const 64) "192.0.2.10")
  (data (i32.const 80) "192.0.2.20")
  (global $heap (mut i32) (i32.const 1024))
  (func (export "dnspolicy_abi_version") (result i32) i32.const 1)
  (func (export "alloc") (param $n i32) (result i32) (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8))))
    (local.get $p))
  (func (export "init") (param i32 i32) (result i32) i32.const 0)
  (func (export "destroy"))
  (func (export "process") (param $ctx i32) (param $len i32) (result i32)
    (local $n i32)
    (if (i32.eqz (i32.and
          (i32.and (i32.eq (i32.load16_u offset=4 (local.get $ctx)) (i32.const 1))
                   (i32.eq (i32.load16_u offset=10 (local.get $ctx)) (i32.const 15)))
          (i32.and (i64.eq (i64.load offset=16 (local.get $ctx)) (i64.load (i32.const 32)))
                   (i64.eq (i64.load offset=23 (local.get $ctx)) (i64.load (i32.const 39))))))
      (then (drop (call $set_rcode (i32.const 5))) (return (i32.const 1))))
    (local.set $n (call $geo_region (i32.const 0) (i32.const 0) (i32.const 128) (i32.const 64)))
    (if (i32.and (i32.eq (local.get $n) (i32.const 5))
          (i32.and (i32.eq (i32.load (i32.const 128)) (i32.load (i32.const 16)))
                   (i32.eq (i32.load8_u (i32.const 132)) (i32.load8_u (i32.const 20)))))
      (then (drop (call $set_answer (i32.const 64) (i32.const 10) (i32.const 1) (i32.const 60))))
      (else (drop (call $set_answer (i32.const 80) (i32.const 10) (i32.const 1) (i32.const 60)))))
    i32.const 1))
''')

for n in ("10k", "100k"):
    lines = []
    with open(f"{data}/suffix-{n}.txt") as f:
        for i, line in enumerate(f):
            parts = line.split()
            if len(parts) < 2:
                continue
            suffix, addr = parts[0].rstrip("."), parts[1]
            lines.append(f'rule s{i} when {{query.name}} ends_with "{suffix}" {{ then answer A {addr} ttl 60 }}\n')
    lines.append("rule other priority -1 { then refuse }\n")
    write(f"{out}/suffix-{n}/plugins/suffix.dsl", "".join(lines))
