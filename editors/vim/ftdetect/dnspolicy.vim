" dnspolicy policies: *.dsl
autocmd BufRead,BufNewFile *.dsl setfiletype dnspolicy
