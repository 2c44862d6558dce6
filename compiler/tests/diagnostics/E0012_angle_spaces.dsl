# expect: E0012
if < user.age > > 18 < then "VIP" >
