# expect: E0034
then {user.pool}
