# expect: E0040
rule r {
    then nxdomain
    then refuse
}
