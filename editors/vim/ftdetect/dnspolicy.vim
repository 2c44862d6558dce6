" dnspolicy policies: *.dsl. Vim's own rule for *.dsl (DSSSL when line 1
" starts with `<!`, else Structurizr) runs before this one, and
" `setfiletype` then does nothing; so set the filetype outright, except for
" DSSSL files and Structurizr workspaces.
function! s:DetectDnspolicy() abort
  if getline(1) =~# '^\s*<!'
    return
  endif
  for l in getline(1, 200)
    if l =~# '^\s*workspace\>'
      return
    endif
  endfor
  set filetype=dnspolicy
endfunction
autocmd BufRead,BufNewFile *.dsl call s:DetectDnspolicy()
