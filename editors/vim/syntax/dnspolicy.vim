" Vim syntax file for dnspolicy (.dsl). The keyword lines are checked
" against the compiler's keyword table by compiler/tests/editors.rs.
if exists("b:current_syntax")
  finish
endif

syn keyword dnspolicyControl     if else then when pass
syn keyword dnspolicyDeclaration const set input rule priority let
syn keyword dnspolicyAction      answer rewrite ttl forward pool count nxdomain nodata refuse servfail drop truncate
syn keyword dnspolicyAction      route respond redirect set_header remove_header
syn keyword dnspolicyWordOp      in not and or matches starts_with ends_with
syn keyword dnspolicyBoolean     true false
syn keyword dnspolicyType        bool int string name ip cidr qtype contained
syn keyword dnspolicyQtype       A NS CNAME SOA PTR HINFO MX TXT AAAA LOC SRV NAPTR DS SSHFP RRSIG NSEC DNSKEY TLSA SVCB HTTPS CAA ANY
syn match   dnspolicyQtype       "\<TYPE\d\+\>"
syn match   dnspolicyFunction    "\<\(hash\|lower\|len\)\>\ze\s*("

" Where matches start at the same column the one defined last wins: the
" operators come first so that `//` comments and `<var>` references win
" over `/` and `<`.
syn match   dnspolicyOperator    "==\|!=\|<=\|>=\|&&\|||\|[-+*/%!<>=]"

syn match   dnspolicyComment     "#.*$" contains=@Spell
syn match   dnspolicyComment     "//.*$" contains=@Spell
syn match   dnspolicyEscape      "\\\([ntr0\\\"]\|u{\x\+}\)" contained
syn region  dnspolicyString      start=+"+ skip=+\\.+ end=+"\|$+ contains=dnspolicyEscape
syn match   dnspolicyRawString   +r"[^"]*"+

" Path segments after the first may hold `-` (HTTP header names:
" `{http.header.x-user-tier}`). A bare dotted path (after `input`) is one
" plain word: no operator `-`, no keywords inside.
syn match   dnspolicyPath        "\<\h\w*\(\.\h[0-9A-Za-z_-]*\)\+" transparent contains=NONE
syn match   dnspolicyInjectedVar "{\s*\h\w*\(\.\h[0-9A-Za-z_-]*\)*\s*}"
syn match   dnspolicyInjectedVar "<\h\w*\(\.\h[0-9A-Za-z_-]*\)*>"
" Context paths win over injected variables: define them last.
syn match   dnspolicyContextVar  "{\s*\(client\|query\|server\|time\|http\)\(\.\h[0-9A-Za-z_-]*\)\+\s*}"
syn match   dnspolicyContextVar  "<\(client\|query\|server\|time\|http\)\(\.\h[0-9A-Za-z_-]*\)\+>"

" Later definitions win where matches start at the same column: numbers,
" then addresses, then prefixes.
syn match   dnspolicyNumber      "\<\d\+\>"
syn match   dnspolicyIp          "\<\d\{1,3}\(\.\d\{1,3}\)\{3}\>"
syn match   dnspolicyIp          "\x\{0,4}\(:\x\{0,4}\)\{2,7}\(/\d\+\)\="
syn match   dnspolicyCidr        "\<\d\{1,3}\(\.\d\{1,3}\)\{3}/\d\{1,3}\>"
" IPv6 with an embedded IPv4 tail (`::ffff:192.0.2.1`, `64:ff9b::192.0.2.33`
" forms): one token, not an IPv6 head and an IPv4 tail.
syn match   dnspolicyIp          "\x\{0,4}\(:\x\{0,4}\)\{1,5}:\d\{1,3}\(\.\d\{1,3}\)\{3}\>"
syn match   dnspolicyCidr        "\x\{0,4}\(:\x\{0,4}\)\{1,5}:\d\{1,3}\(\.\d\{1,3}\)\{3}/\d\{1,3}\>"
" `log` after a rule's priority: a contextual word, not a keyword.
syn match   dnspolicyRuleFlag    "\<log\>\ze\s*\%(when\>\|[{<]\)"
syn match   dnspolicyInputDecl   ":\s*\[\=\s*\(bool\|int\|string\|name\|ip\|cidr\|qtype\)\>" contains=dnspolicyType

hi def link dnspolicyControl     Conditional
hi def link dnspolicyDeclaration Keyword
hi def link dnspolicyAction      Statement
hi def link dnspolicyWordOp      Operator
hi def link dnspolicyBoolean     Boolean
hi def link dnspolicyType        Type
hi def link dnspolicyQtype       Constant
hi def link dnspolicyFunction    Function
hi def link dnspolicyComment     Comment
hi def link dnspolicyString      String
hi def link dnspolicyRawString   String
hi def link dnspolicyEscape      SpecialChar
hi def link dnspolicyContextVar  Identifier
hi def link dnspolicyInjectedVar PreProc
hi def link dnspolicyCidr        Number
hi def link dnspolicyIp          Number
hi def link dnspolicyNumber      Number
hi def link dnspolicyOperator    Operator
hi def link dnspolicyInputDecl   Delimiter
hi def link dnspolicyRuleFlag    StorageClass

let b:current_syntax = "dnspolicy"
