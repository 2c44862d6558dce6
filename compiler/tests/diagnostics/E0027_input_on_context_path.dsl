# expect: E0027
input client.ip : ip
