/**
 * Tree-sitter grammar for dnspolicy policies (`*.dsl`). It follows
 * grammar/dnspolicy.lalrpop (the compiler's grammar, the authority) and
 * grammar/REFERENCE.md; `compiler/tests/editors.rs` keeps its keywords
 * equal to the compiler's lexer.
 */

const PREC = {
  or: 1,
  and: 2,
  not: 3,
  compare: 4,
  sum: 5,
  product: 6,
  unary: 7,
};

const IDENT = /[A-Za-z_][A-Za-z0-9_]*/;

// A path segment after the first: may hold `-` (HTTP header names,
// `http.header.x-user-tier`), not as its first character.
const SEGMENT = /[A-Za-z_][A-Za-z0-9_-]*/;

module.exports = grammar({
  name: 'dnspolicy',

  extras: $ => [/\s/, $.comment],

  word: $ => $.identifier,

  rules: {
    source_file: $ => repeat($._item),

    _item: $ => choice(
      $.const_declaration,
      $.set_declaration,
      $.input_declaration,
      $.rule_declaration,
      $._statement,
    ),

    const_declaration: $ => seq('const', field('name', $.identifier), '=', field('value', $._expression)),

    set_declaration: $ => seq('set', field('name', $.identifier), '=', field('value', $._expression)),

    input_declaration: $ => seq(
      'input',
      field('path', choice($.identifier, $.path)),
      ':',
      field('type', $.type),
    ),

    type: $ => choice($.identifier, seq('[', $.identifier, ']')),

    rule_declaration: $ => seq(
      'rule',
      field('name', $.identifier),
      optional(seq('priority', field('priority', $.signed_integer))),
      // `log` (the checker refuses any other word): a contextual word.
      optional(field('flag', $.identifier)),
      optional(seq('when', field('guard', $._expression))),
      field('body', $._block),
    ),

    signed_integer: $ => seq(optional('-'), $.integer),

    _block: $ => choice($.block, $.angle_block),

    block: $ => seq('{', repeat($._statement), '}'),

    // `< then ... >`: inside, values stop below comparisons, so the
    // closing `>` is never "greater than". After a condition, `<` opens
    // an angle block exactly when a statement keyword follows (the
    // parser's one token of lookahead sees `then`, `if` or `let`).
    angle_block: $ => seq('<', repeat($._angle_statement), '>'),

    _statement: $ => choice($.if_statement, $.let_statement, $.then_statement),

    _angle_statement: $ => choice(
      $.if_statement,
      alias($.angle_let_statement, $.let_statement),
      alias($.angle_then_statement, $.then_statement),
    ),

    if_statement: $ => prec.right(seq(
      'if',
      field('condition', $._expression),
      field('consequence', $._block),
      optional(seq('else', field('alternative', choice($._block, $.if_statement)))),
    )),

    let_statement: $ => seq('let', field('name', $.identifier), '=', field('value', $._expression)),
    angle_let_statement: $ => seq('let', field('name', $.identifier), '=', field('value', $._angle_value)),

    then_statement: $ => seq('then', choice($._action, field('value', $._expression))),
    angle_then_statement: $ => seq('then', choice($._action, field('value', $._angle_value))),

    _action: $ => choice(
      $.answer_action,
      $.rewrite_action,
      $.forward_action,
      $.pool_action,
      $.route_action,
      $.respond_action,
      $.redirect_action,
      $.rcode_action,
    ),

    answer_action: $ => prec.right(seq(
      'answer',
      field('type', $.identifier),
      commaSep1(field('data', $._unary)),
      optional(seq('ttl', field('ttl', $._unary))),
    )),

    rewrite_action: $ => prec.right(seq(
      'rewrite',
      field('target', $._unary),
      optional(seq('ttl', field('ttl', $._unary))),
    )),

    forward_action: $ => seq('forward', field('upstream', $._unary)),

    pool_action: $ => prec.right(seq(
      'pool',
      field('name', choice($.identifier, $.string)),
      optional(seq(field('pick', $.identifier), optional(field('key', $._unary)))),
      optional(seq('count', field('count', $._unary))),
      optional(seq('ttl', field('ttl', $._unary))),
    )),

    // HTTP verdicts. Header edits follow the pool in any order; `respond`'s
    // body is optional (only statements, which start with a keyword,
    // follow an action).
    route_action: $ => prec.right(seq(
      'route',
      field('pool', $._http_operand),
      repeat(field('edit', choice($.set_header, $.remove_header))),
    )),

    set_header: $ => seq('set_header', field('name', $._http_operand), field('value', $._http_operand)),

    remove_header: $ => seq('remove_header', field('name', $._http_operand)),

    respond_action: $ => prec.right(seq(
      'respond',
      field('status', $._http_operand),
      optional(field('body', $._http_operand)),
    )),

    redirect_action: $ => seq('redirect', field('status', $._http_operand), field('url', $._http_operand)),

    // HTTP verdict operands (the compiler's `HttpOperand`) are single
    // tokens, since some follow each other (`set_header NAME VALUE`): a
    // call or a parenthesis after one could be read two ways.
    _http_operand: $ => choice($.integer, $.string, $.raw_string, $.identifier, $.variable),

    rcode_action: _ => choice('nxdomain', 'nodata', 'refuse', 'servfail', 'drop', 'truncate', 'pass'),

    _expression: $ => choice(
      $.binary_expression,
      $.not_expression,
      $._unary,
    ),

    // `not` and `!` are one operator, below comparisons: `not a == b` is
    // `not (a == b)`.
    not_expression: $ => prec(PREC.not, seq(choice('not', '!'), $._expression)),

    binary_expression: $ => choice(
      prec.left(PREC.or, seq(field('left', $._expression), field('operator', choice('or', '||')), field('right', $._expression))),
      prec.left(PREC.and, seq(field('left', $._expression), field('operator', choice('and', '&&')), field('right', $._expression))),
      prec.left(PREC.compare, seq(
        field('left', $._expression),
        field('operator', choice('==', '!=', '<', '<=', '>', '>=', 'in', seq('not', 'in'), 'matches', 'starts_with', 'ends_with')),
        field('right', $._expression),
      )),
      ...arith($, $._expression),
    ),

    // Values inside `< ... >`: arithmetic at most.
    _angle_value: $ => choice(alias($.angle_arithmetic, $.binary_expression), $._unary),
    angle_arithmetic: $ => choice(...arith($, $._angle_value)),

    _unary: $ => choice($.negation, $._primary),

    negation: $ => prec(PREC.unary, seq('-', $._unary)),

    _primary: $ => choice(
      $.integer,
      $.string,
      $.raw_string,
      $.boolean,
      $.ip,
      $.cidr,
      $.variable,
      $.identifier,
      $.call,
      $.list,
      $.parenthesized,
    ),

    parenthesized: $ => seq('(', $._expression, ')'),

    call: $ => seq(field('function', $.identifier), '(', commaSep($._expression), ')'),

    list: $ => seq('[', commaSep($._expression), optional(','), ']'),

    // `{client.region}` and `<user.age>`; `{http.header.x-user-tier}`.
    variable: $ => choice(
      seq('{', field('path', choice($.identifier, $.path)), '}'),
      seq('<', field('path', alias(token.immediate(seq(IDENT, repeat(seq('.', SEGMENT)))), $.path)), token.immediate('>')),
    ),

    path: _ => token(seq(IDENT, repeat1(seq('.', SEGMENT)))),

    identifier: _ => IDENT,

    integer: _ => /[0-9]+/,

    boolean: _ => choice('true', 'false'),

    string: $ => seq('"', repeat(choice($.escape_sequence, token.immediate(prec(1, /[^"\\\n]+/)))), token.immediate('"')),

    escape_sequence: _ => token.immediate(seq('\\', choice(/[ntr0\\"]/, /u\{[0-9A-Fa-f]+\}/))),

    raw_string: _ => token(seq('r"', /[^"\n]*/, '"')),

    ip: _ => token(choice(
      /[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/,
      /[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*/,
    )),

    cidr: _ => token(choice(
      /[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+\/[0-9]+/,
      /[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*\/[0-9]+/,
    )),

    comment: _ => token(choice(seq('#', /.*/), seq('//', /.*/))),
  },
});

function arith($, operand) {
  return [
    prec.left(PREC.sum, seq(field('left', operand), field('operator', choice('+', '-')), field('right', operand))),
    prec.left(PREC.product, seq(field('left', operand), field('operator', choice('*', '/', '%')), field('right', operand))),
  ];
}

function commaSep1(rule) {
  return seq(rule, repeat(seq(',', rule)));
}

function commaSep(rule) {
  return optional(commaSep1(rule));
}
