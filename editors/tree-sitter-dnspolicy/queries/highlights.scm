; Highlights for dnspolicy (Neovim, Helix, Zed and `tree-sitter highlight`).
; Editors disagree on which of two matching patterns wins (the first in
; tree-sitter-highlight and Helix, the last in Neovim), so patterns that
; could match the same node exclude each other.

(comment) @comment

["const" "set" "input" "rule" "priority" "let"] @keyword

["if" "else" "when" "then"] @keyword.conditional

["answer" "rewrite" "ttl" "forward" "pool" "count"
 "route" "respond" "redirect" "set_header" "remove_header"] @keyword

(rcode_action) @keyword

["in" "not" "and" "or" "matches" "starts_with" "ends_with"] @keyword.operator

["==" "!=" "<=" ">=" "&&" "||" "+" "-" "*" "/" "%" "!" "="] @operator

(binary_expression operator: ["<" ">"] @operator)

(string) @string
(raw_string) @string
(escape_sequence) @string.escape

[(integer) (ip) (cidr)] @number

(boolean) @boolean

(type (identifier) @type)

(call function: (identifier) @function.builtin)

; Context paths are filled by the server; injected variables by the caller.
(variable
  path: (_) @variable.builtin
  (#match? @variable.builtin "^(client|query|server|time|http)[.]"))

(variable
  path: (_) @variable
  (#not-match? @variable "^(client|query|server|time|http)[.]"))

(input_declaration path: (_) @variable)

(answer_action type: (identifier) @constant)

((identifier) @constant
  (#match? @constant "^(A|NS|CNAME|SOA|PTR|HINFO|MX|TXT|AAAA|LOC|SRV|NAPTR|DS|SSHFP|RRSIG|NSEC|DNSKEY|TLSA|SVCB|HTTPS|CAA|ANY|TYPE[0-9]+)$"))

(rule_declaration name: (identifier) @function)

(rule_declaration flag: (identifier) @attribute)

(const_declaration name: (identifier) @constant)

(set_declaration name: (identifier) @variable)

(pool_action name: (_) @label)

["{" "}" "[" "]" "(" ")"] @punctuation.bracket

["," ":"] @punctuation.delimiter
