# expect: E0047
rule old when {http.path} starts_with "/old/" { then refuse }
