#!/usr/bin/env python3
"""Writes tests/tokens.dsl (run from editors/vscode): each source line is
followed by vscode-tmgrammar-test assertions whose columns are computed
from (text, scope) pairs rather than counted by hand."""
spec = [
 ('const TTL = 300', [('const','keyword.declaration.dnspolicy'),('TTL','entity.name.constant.dnspolicy'),('=','keyword.operator.assignment.dnspolicy'),('300','constant.numeric.integer.dnspolicy')]),
 ('set nets = [10.1.0.0/16, 192.0.2.1, 2001:db8:100::/48, ::1]', [('set','keyword.declaration.dnspolicy'),('[','punctuation.section.brackets.begin.dnspolicy'),('10.1.0.0/16','constant.numeric.cidr.dnspolicy'),('192.0.2.1','constant.numeric.ip.dnspolicy'),('2001:db8:100::/48','constant.numeric.cidr.dnspolicy'),('::1','constant.numeric.ip.dnspolicy'),(',','punctuation.separator.comma.dnspolicy')]),
 ('input user.tier : [string]', [('input','keyword.declaration.dnspolicy'),('user.tier','variable.other.injected.dnspolicy'),(':','punctuation.separator.colon.dnspolicy'),('string','support.type.dnspolicy')]),
 ('rule geo priority 100 when {query.name} in ["*.example.com"] {', [('rule','keyword.declaration.rule.dnspolicy'),('geo','entity.name.function.rule.dnspolicy'),('priority','keyword.declaration.dnspolicy'),('100','constant.numeric.integer.dnspolicy'),('when','keyword.control.dnspolicy'),('{','punctuation.definition.variable.begin.dnspolicy'),('query.name','variable.language.context.dnspolicy'),('}','punctuation.definition.variable.end.dnspolicy'),(' in ','keyword.operator.word.dnspolicy',1,2),('"*.example.com"','string.quoted.double.dnspolicy'),('] {','punctuation.section.block.begin.dnspolicy',2,1)]),
 ('    if {client.region} == "CN-BJ" && hash({client.subnet}) % 100 < 5 {', [('if','keyword.control.dnspolicy'),('client.region','variable.language.context.dnspolicy'),('==','keyword.operator.comparison.dnspolicy'),('&&','keyword.operator.logical.dnspolicy'),('hash','support.function.builtin.dnspolicy'),('(','punctuation.section.parens.begin.dnspolicy'),('client.subnet','variable.language.context.dnspolicy'),('%','keyword.operator.arithmetic.dnspolicy'),('<','keyword.operator.comparison.dnspolicy')]),
 ('        then rewrite "cdn-bj.example.com" ttl TTL', [('then','keyword.control.dnspolicy'),('rewrite','keyword.other.action.dnspolicy'),('"','punctuation.definition.string.begin.dnspolicy'),('cdn-bj.example.com','string.quoted.double.dnspolicy'),('ttl','keyword.other.action.dnspolicy'),('TTL','variable.other.dnspolicy')]),
 ('    } else if {query.type} == AAAA || {query.type} in [A, TYPE65] {', [('}','punctuation.section.block.end.dnspolicy'),('else','keyword.control.dnspolicy'),('AAAA','support.constant.qtype.dnspolicy'),('||','keyword.operator.logical.dnspolicy'),('[A,','support.constant.qtype.dnspolicy',1,1),('TYPE65','support.constant.qtype.dnspolicy')]),
 ('set mapped = [::ffff:192.0.2.1, ::ffff:10.0.0.0/104, 64:ff9b::192.0.2.33]', [('::ffff:192.0.2.1','constant.numeric.ip.dnspolicy'),('::ffff:10.0.0.0/104','constant.numeric.cidr.dnspolicy'),('64:ff9b::192.0.2.33','constant.numeric.ip.dnspolicy')]),
 ('        then answer AAAA 2001:db8::1 ttl 60', [('answer','keyword.other.action.dnspolicy'),('AAAA','support.constant.qtype.dnspolicy'),('2001:db8::1','constant.numeric.ip.dnspolicy')]),
 ('    } else {', [('else','keyword.control.dnspolicy')]),
 ('        let x = lower({user.name}) + "\\t\\u{41}\\q"', [('let','keyword.declaration.dnspolicy'),('lower','support.function.builtin.dnspolicy'),('user.name','variable.other.injected.dnspolicy'),('+','keyword.operator.arithmetic.dnspolicy'),('\\t','constant.character.escape.dnspolicy'),('\\u{41}','constant.character.escape.dnspolicy'),('\\q','invalid.illegal.escape.dnspolicy')]),
 ('        if x matches r"^a\\.b$" and not true or false { then pass }', [('matches','keyword.operator.word.dnspolicy'),('r"^a\\.b$"','string.quoted.raw.dnspolicy'),('and','keyword.operator.word.dnspolicy'),('not','keyword.operator.word.dnspolicy'),('true','constant.language.boolean.dnspolicy'),(' or ','keyword.operator.word.dnspolicy',1,2),('false','constant.language.boolean.dnspolicy'),('pass','keyword.control.dnspolicy')]),
 ('        then forward backup   // a pool', [('forward','keyword.other.action.dnspolicy'),('backup','variable.other.dnspolicy'),('// a pool','comment.line.double-slash.dnspolicy')]),
 ('    }', []),
 ('}', []),
 ('if <user.age> > 18 < then "VIP" >', [('<','punctuation.definition.variable.begin.dnspolicy'),('user.age','variable.other.injected.dnspolicy'),('> >','punctuation.definition.variable.end.dnspolicy',0,1),('> 18','keyword.operator.comparison.dnspolicy',0,1),('< then','punctuation.section.block.begin.angle.dnspolicy',0,1),('"VIP" >','keyword.operator.comparison.dnspolicy',6,1)]),
 ('if <client.ip> in 10.0.0.0/8 < then nxdomain > # trailing', [('client.ip','variable.language.context.dnspolicy'),('10.0.0.0/8','constant.numeric.cidr.dnspolicy'),('nxdomain','keyword.other.action.dnspolicy'),('# trailing','comment.line.number-sign.dnspolicy')]),
 ('then nodata', [('nodata','keyword.other.action.dnspolicy')]),
 ('then refuse', [('refuse','keyword.other.action.dnspolicy')]),
 ('then servfail', [('servfail','keyword.other.action.dnspolicy')]),
 ('then drop', [('drop','keyword.other.action.dnspolicy')]),
 ('then truncate', [('truncate','keyword.other.action.dnspolicy')]),
 ('then -42 / 7 - 1', [('42','constant.numeric.integer.dnspolicy'),('/','keyword.operator.arithmetic.dnspolicy')]),
 # HTTP verdicts; path segments after the first may hold `-`.
 ('rule canary when {http.header.x-canary} == "true" {', [('rule','keyword.declaration.rule.dnspolicy'),('{','punctuation.definition.variable.begin.dnspolicy'),('http.header.x-canary','variable.language.context.dnspolicy'),('}','punctuation.definition.variable.end.dnspolicy'),('==','keyword.operator.comparison.dnspolicy')]),
 ('    then route "api-canary" set_header "X-Route" {user.x-tag} remove_header "X-Debug"', [('route','keyword.other.action.dnspolicy'),('"api-canary"','string.quoted.double.dnspolicy'),('set_header','keyword.other.action.dnspolicy'),('X-Route','string.quoted.double.dnspolicy'),('user.x-tag','variable.other.injected.dnspolicy'),('remove_header','keyword.other.action.dnspolicy')]),
 ('    if <http.header.X-Canary> == "no" < then respond 404 >', [('<','punctuation.definition.variable.begin.dnspolicy'),('http.header.X-Canary','variable.language.context.dnspolicy'),('> ==','punctuation.definition.variable.end.dnspolicy',0,1),('respond','keyword.other.action.dnspolicy'),('404','constant.numeric.integer.dnspolicy')]),
 ('    then respond 403 "forbidden\\n"', [('respond','keyword.other.action.dnspolicy'),('403','constant.numeric.integer.dnspolicy'),('\\n','constant.character.escape.dnspolicy')]),
 ('}', []),
 ('then redirect 308 <user.next-url>', [('redirect','keyword.other.action.dnspolicy'),('308','constant.numeric.integer.dnspolicy'),('user.next-url','variable.other.injected.dnspolicy')]),
 ('input user.x-tag : string', [('user.x-tag','variable.other.injected.dnspolicy')]),
]
out = ['# SYNTAX TEST "source.dnspolicy" "every token class of the language"']
for line, asserts in spec:
    out.append(line)
    for a in asserts:
        text, scope = a[0], a[1]
        off, length = (a[2], a[3]) if len(a) == 4 else (0, len(text))
        col = line.index(text) + off
        if col == 0:
            out.append('# <' + '-' * length + ' ' + scope)
        else:
            out.append('#' + ' ' * (col - 1) + '^' * length + ' ' + scope)
open('tests/tokens.dsl', 'w').write('\n'.join(out) + '\n')
