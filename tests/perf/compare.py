#!/usr/bin/env python3
"""Side-by-side table from the kit's runs.csv: median QPS (kept runs), p99,
lost queries, and dnspolicy / best dnsdist configuration per scenario."""
import csv
import statistics
import sys
from collections import defaultdict

PEERS = {
    "static": ["static"],
    "geo": ["geo-native", "lua-geo-ffi", "lua-geo"],
    "lua-geo": ["lua-geo-ffi", "lua-geo"],
    "wasm-geo": ["lua-geo-ffi", "lua-geo"],
    "suffix-10k": ["suffix-10k-ffi", "suffix-10k-lua", "suffix-10k-rules"],
    "suffix-100k": ["suffix-100k-ffi", "suffix-100k-lua", "suffix-100k-rules"],
}

runs = defaultdict(list)
with open(sys.argv[1]) as f:
    for r in csv.DictReader(f):
        if r.get("kept", "1") == "1":
            runs[(r["scenario"], r["setting"])].append(r)


def med(rows, key):
    vals = [float(r[key]) for r in rows if r.get(key) not in (None, "", "-")]
    return statistics.median(vals) if vals else None


print("| scenario | setting | dnspolicy QPS | p99 us | lost | best dnsdist (config) QPS | p99 us | ratio | / bare responder |")
print("|---|---|---|---|---|---|---|---|---|")
for scen, peers in PEERS.items():
    settings = sorted({s for (sc, s) in runs if sc == f"dnspolicy-{scen}"})
    for setting in settings:
        mine = runs[(f"dnspolicy-{scen}", setting)]
        q = med(mine, "qps")
        best = None
        for p in peers:
            rows = runs.get((p, setting))
            if rows:
                pq = med(rows, "qps")
                if best is None or pq > best[1]:
                    best = (p, pq, med(rows, "p99_us"))
        fmt = lambda v: "-" if v is None else f"{v:,.0f}"
        ratio = f"{q / best[1]:.2f}" if best and best[1] else "-"
        peer = f"{fmt(best[1])} ({best[0]})" if best else "-"
        limit = med(runs.get(("limit", setting), []), "qps")
        vs_limit = f"{q / limit:.2f} ({fmt(limit)})" if limit and q else "-"
        print(f"| {scen} | {setting} | {fmt(q)} | {fmt(med(mine, 'p99_us'))} | {fmt(med(mine, 'lost'))} | "
              f"{peer} | {fmt(best[2]) if best else '-'} | {ratio} | {vs_limit} |")

# The plugin kinds against each other, same policy, same run.
kinds = [k for k in ("geo", "lua-geo", "wasm-geo") if any(sc == f"dnspolicy-{k}" for (sc, _) in runs)]
if len(kinds) > 1:
    print()
    print("| setting | " + " | ".join(f"{k} QPS" for k in kinds) + " | wasm-geo / lua-geo | wasm-geo / geo (DSL) |")
    print("|---|" + "---|" * (len(kinds) + 2))
    for setting in sorted({s for (sc, s) in runs if sc.startswith("dnspolicy-")}):
        q = {k: med(runs.get((f"dnspolicy-{k}", setting), []), "qps") for k in kinds}
        ratio = lambda a, b: f"{q[a] / q[b]:.2f}" if q.get(a) and q.get(b) else "-"
        print(f"| {setting} | " + " | ".join("-" if q[k] is None else f"{q[k]:,.0f}" for k in kinds)
              + f" | {ratio('wasm-geo', 'lua-geo')} | {ratio('wasm-geo', 'geo')} |")

# Answers from health-checked pools against the static answer, same run
# (the goal: gslb >= 0.9x static).
if any(sc == "dnspolicy-gslb" for (sc, _) in runs):
    print()
    print("| setting | static QPS | gslb QPS | gslb / static |")
    print("|---|---|---|---|")
    for setting in sorted({s for (sc, s) in runs if sc == "dnspolicy-gslb"}):
        qs = med(runs.get(("dnspolicy-static", setting), []), "qps")
        qg = med(runs.get(("dnspolicy-gslb", setting), []), "qps")
        f = lambda v: "-" if v is None else f"{v:,.0f}"
        r = f"{qg / qs:.2f}" if qs and qg else "-"
        print(f"| {setting} | {f(qs)} | {f(qg)} | {r} |")

# This build against a baseline build (BASELINE_BIN), same run.
base = sorted({sc[len("baseline-"):] for (sc, _) in runs if sc.startswith("baseline-")})
if base:
    print()
    print("| scenario | setting | this build QPS | p99 us | baseline QPS | p99 us | this / baseline |")
    print("|---|---|---|---|---|---|---|")
    for scen in base:
        for setting in sorted({s for (sc, s) in runs if sc == f"baseline-{scen}"}):
            a = runs.get((f"dnspolicy-{scen}", setting), [])
            b = runs.get((f"baseline-{scen}", setting), [])
            qa, qb = med(a, "qps"), med(b, "qps")
            f = lambda v: "-" if v is None else f"{v:,.0f}"
            r = f"{qa / qb:.2f}" if qa and qb else "-"
            print(f"| {scen} | {setting} | {f(qa)} | {f(med(a, 'p99_us'))} | {f(qb)} | {f(med(b, 'p99_us'))} | {r} |")
