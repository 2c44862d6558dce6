# Send 5 % of client subnets to the canary pool, stable per subnet, and
# keep a maintenance window at night.
const CANARY_PERCENT = 5

rule maintenance priority 900 when {query.name} ends_with "internal.example.com" {
    if {time.hour} >= 2 && {time.hour} < 4 { then servfail }
}

rule canary priority 500 {
    if {query.name} == "api.example.com" && hash({client.subnet}) % 100 < CANARY_PERCENT {
        then forward canary
    }
}

rule pools priority 100 {
    if {client.asn} in [64496, 64497] { then forward "partner" }
    if {client.country} in ["CN", "HK"] { then "asia" } else { then "default" }
}
