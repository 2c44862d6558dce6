# let binds for the rest of its block and nested blocks; shadowing makes a
# new binding; each rule has its own locals.
# eval: {"user.n": 2} => 21
# eval: {"user.n": 5} => 6
rule r priority 2 {
    let x = {user.n} * 10
    if x < 30 {
        let x = x + 1
        then x
    }
}
rule s priority 1 {
    let x = {user.n} + 1
    then x
}
