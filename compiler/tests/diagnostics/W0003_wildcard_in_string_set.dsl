# expect: W0003
input user.host : string
set blk = ["*.example.com"]
if {user.host} in blk { then "blocked" }
