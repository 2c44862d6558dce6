# expect: E0033
if {query.type} == "AAAAA" { then nodata }
