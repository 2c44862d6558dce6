# expect: E0044
const LIMIT = {user.limit}
if {client.asn} == LIMIT { then refuse }
