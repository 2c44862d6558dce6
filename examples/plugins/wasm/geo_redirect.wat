;; The geo redirect of examples/plugins/dns/geo_redirect.lua as a WASM
;; plugin (ABI version 1, see grammar/WASM-ABI.md): clients whose GeoIP
;; region is CN-BJ get cdn-bj.example.com, everyone else cdn-global.
;;
;; Served as it is: dnspolicy compiles .wat text itself.
;;   cp examples/plugins/wasm/geo_redirect.wat plugins/dns/
(module
  (import "dnspolicy" "geo_region"
    (func $geo_region (param $ip i32) (param $ip_len i32) (param $buf i32) (param $cap i32) (result i32)))
  (import "dnspolicy" "set_answer"
    (func $set_answer (param $target i32) (param $len i32) (param $rtype i32) (param $ttl i32) (result i32)))

  (memory (export "memory") 1)
  (data (i32.const 16) "CN-BJ")
  (data (i32.const 32) "cdn-bj.example.com")
  (data (i32.const 64) "cdn-global.example.com")
  ;; 128..192 holds the client's region; alloc hands out memory from 1024 on.
  (global $heap (mut i32) (i32.const 1024))

  (func (export "dnspolicy_abi_version") (result i32)
    i32.const 1)

  ;; A bump allocator: the host asks twice per instance (config, query).
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32)
    (local $end i32)
    (local.set $p (global.get $heap))
    (local.set $end
      (i32.add (local.get $p) (i32.and (i32.add (local.get $len) (i32.const 7)) (i32.const -8))))
    (if (i32.gt_u (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
      (then
        (if (i32.lt_s
              (memory.grow (i32.add (i32.shr_u (i32.sub (local.get $end) (i32.mul (memory.size) (i32.const 65536)))
                                               (i32.const 16))
                                    (i32.const 1)))
              (i32.const 0))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    local.get $p)

  (func (export "init") (param $cfg i32) (param $cfg_len i32) (result i32)
    i32.const 0)

  (func (export "process") (param $ctx i32) (param $ctx_len i32) (result i32)
    (local $n i32)
    ;; Address length 0: the client (the ECS address when the query has one).
    (local.set $n (call $geo_region (i32.const 0) (i32.const 0) (i32.const 128) (i32.const 64)))
    (if (i32.and
          (i32.eq (local.get $n) (i32.const 5))
          (i32.and
            (i32.eq (i32.load (i32.const 128)) (i32.load (i32.const 16)))
            (i32.eq (i32.load8_u (i32.const 132)) (i32.load8_u (i32.const 20)))))
      (then (drop (call $set_answer (i32.const 32) (i32.const 18) (i32.const 1) (i32.const 300))))
      (else (drop (call $set_answer (i32.const 64) (i32.const 22) (i32.const 1) (i32.const 300)))))
    ;; 1: decided through host calls.
    i32.const 1)

  (func (export "destroy")))
