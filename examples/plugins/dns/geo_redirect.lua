function apply(ctx)
  local client_ip = ctx:get_client_ip()
  local region = ctx:lookup_geo_region(client_ip)
  if region == "CN-BJ" then
    ctx:set_answer("cdn-bj.example.com", "A", 300)
  else
    ctx:set_answer("cdn-global.example.com", "A", 300)
  end
end
