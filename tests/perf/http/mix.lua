-- tests/perf/http.sh: wrk rotates through the four request kinds, one of
-- each route in turn (canary header, premium tier, region query, plain).
-- The requests are formatted once per thread, in init.
local reqs, n, i = {}, 0, 0

function init(args)
   reqs = {
      wrk.format("GET", "/", { ["X-Canary"] = "true" }),
      wrk.format("GET", "/", { ["X-User-Tier"] = "premium" }),
      wrk.format("GET", "/?region=cn-sh"),
      wrk.format("GET", "/"),
   }
   n = #reqs
end

function request()
   i = i % n + 1
   return reqs[i]
end
