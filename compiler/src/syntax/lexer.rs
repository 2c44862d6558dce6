//! The lexer: source text to `(start, Tok, end)` triples for the grammar.
//!
//! Two spellings meet here. `{user.age}` is lexed as `{`, a path, `}` and
//! resolved by the grammar, but the angle spelling cannot be left to an LR(1)
//! parser: `<` is also "less than". So the lexer decides, with the rules the
//! language reference states:
//! - `<path>` with no spaces inside is one [`Tok::AngleVar`] token;
//! - `<` directly followed (after whitespace) by `then`, `if` or `let` opens an
//!   angle block ([`Tok::AngleOpen`]); any other `<` is "less than".
//!
//! Bad input never stops the lexer: each error becomes a [`LexError`] and a
//! placeholder token of the same class, so the parser goes on and one run
//! reports every problem.

use crate::ir::types::Cidr;
use crate::syntax::span::Span;
use logos::Logos;
use std::net::IpAddr;

/// What went wrong in a single token.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum LexErrorKind {
    /// A character that starts no token.
    #[default]
    UnexpectedChar,
    /// A string literal with no closing quote on its line.
    UnterminatedString,
    /// A backslash escape the language does not define.
    InvalidEscape(String),
    /// An integer literal that does not fit in 64 bits.
    IntOverflow,
    /// A keyword written as a one-segment variable, `<then>`.
    KeywordVariable(String),
    /// An address literal that is not a valid IPv4/IPv6 address.
    InvalidIp(String),
    /// A CIDR literal with a bad prefix length or host bits set.
    InvalidCidr(String),
}

/// A lexical error with its location.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexError {
    /// What went wrong.
    pub kind: LexErrorKind,
    /// Where.
    pub span: Span,
}

/// A token. Borrowed text points into the source.
#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(error = LexErrorKind)]
#[logos(skip(r"([ \t\r\n\f]+|#[^\n]*|//[^\n]*)", allow_greedy = true))]
pub enum Tok<'input> {
    // Items.
    /// `const`
    #[token("const")]
    Const,
    /// `set`
    #[token("set")]
    Set,
    /// `input`
    #[token("input")]
    Input,
    /// `rule`
    #[token("rule")]
    Rule,
    /// `priority`
    #[token("priority")]
    Priority,
    /// `when`
    #[token("when")]
    When,
    // Statements.
    /// `if`
    #[token("if")]
    If,
    /// `else`
    #[token("else")]
    Else,
    /// `let`
    #[token("let")]
    Let,
    /// `then`
    #[token("then")]
    Then,
    // Actions.
    /// `answer`
    #[token("answer")]
    Answer,
    /// `rewrite`
    #[token("rewrite")]
    Rewrite,
    /// `ttl`
    #[token("ttl")]
    Ttl,
    /// `forward`
    #[token("forward")]
    Forward,
    /// `pool`
    #[token("pool")]
    Pool,
    /// `count`
    #[token("count")]
    Count,
    /// `nxdomain`
    #[token("nxdomain")]
    Nxdomain,
    /// `nodata`
    #[token("nodata")]
    Nodata,
    /// `refuse`
    #[token("refuse")]
    Refuse,
    /// `servfail`
    #[token("servfail")]
    Servfail,
    /// `drop`
    #[token("drop")]
    Drop,
    /// `truncate`
    #[token("truncate")]
    Truncate,
    /// `pass`
    #[token("pass")]
    Pass,
    /// `route` (HTTP)
    #[token("route")]
    Route,
    /// `respond` (HTTP)
    #[token("respond")]
    Respond,
    /// `redirect` (HTTP)
    #[token("redirect")]
    Redirect,
    /// `set_header` (HTTP, after `route`)
    #[token("set_header")]
    SetHeader,
    /// `remove_header` (HTTP, after `route`)
    #[token("remove_header")]
    RemoveHeader,
    // Word operators and literals.
    /// `in`
    #[token("in")]
    In,
    /// `not` (also written `!`)
    #[token("not")]
    #[token("!")]
    Not,
    /// `and` (also written `&&`)
    #[token("and")]
    #[token("&&")]
    And,
    /// `or` (also written `||`)
    #[token("or")]
    #[token("||")]
    Or,
    /// `matches`
    #[token("matches")]
    Matches,
    /// `starts_with`
    #[token("starts_with")]
    StartsWith,
    /// `ends_with`
    #[token("ends_with")]
    EndsWith,
    /// `true`
    #[token("true")]
    True,
    /// `false`
    #[token("false")]
    False,

    // Punctuation.
    /// `==`
    #[token("==")]
    EqEq,
    /// `!=`
    #[token("!=")]
    NotEq,
    /// `<` as "less than" (see [`Tok::AngleOpen`] for the block opener)
    #[token("<")]
    Lt,
    /// `<=`
    #[token("<=")]
    Le,
    /// `>`: "greater than", or the end of an angle block
    #[token(">")]
    Gt,
    /// `>=`
    #[token(">=")]
    Ge,
    /// `+`
    #[token("+")]
    Plus,
    /// `-`
    #[token("-")]
    Minus,
    /// `*`
    #[token("*")]
    Star,
    /// `/`
    #[token("/")]
    Slash,
    /// `%`
    #[token("%")]
    Percent,
    /// `=`
    #[token("=")]
    Assign,
    /// `,`
    #[token(",")]
    Comma,
    /// `:`
    #[token(":")]
    Colon,
    /// `(`
    #[token("(")]
    LParen,
    /// `)`
    #[token(")")]
    RParen,
    /// `[`
    #[token("[")]
    LBracket,
    /// `]`
    #[token("]")]
    RBracket,
    /// `{`
    #[token("{")]
    LBrace,
    /// `}`
    #[token("}")]
    RBrace,
    /// `<` that opens an angle block: `< then ... >`. Made by [`lex`], never by logos.
    AngleOpen,

    // Words and literals with data.
    /// A plain identifier.
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*")]
    Ident(&'input str),
    /// A dotted path such as `user.age` (segments may be keywords; after the
    /// first, they may hold `-`, so HTTP header names are written as they
    /// are: `http.header.x-user-tier`).
    #[regex(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_-]*)+")]
    Path(&'input str),
    /// `<path>` with no spaces: the angle spelling of a variable. Holds the path.
    #[regex(r"<[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_-]*)*>", angle_var)]
    AngleVar(&'input str),
    /// An integer literal.
    #[regex(r"[0-9]+", int_literal)]
    Int(i64),
    /// A string literal, escapes resolved; or a raw string `r"..."` (no
    /// escapes: handy for regexes).
    #[regex(r#""([^"\\\n]|\\[^\n])*""#, unescape)]
    #[regex(r#"r"[^"\n]*""#, |lex| { let s = lex.slice(); s[2..s.len() - 1].to_string() })]
    #[regex(r#""([^"\\\n]|\\[^\n])*"#, unterminated)]
    Str(String),
    /// An IPv4 or IPv6 address literal.
    #[regex(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+", ip_literal)]
    #[regex(r"[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*", ip_literal)]
    Ip(IpAddr),
    /// A CIDR literal (`10.0.0.0/8`, `2001:db8::/32`).
    #[regex(r"[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+/[0-9]+", cidr_literal)]
    #[regex(r"[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.]*/[0-9]+", cidr_literal)]
    Cidr(Cidr),
}

fn unescape<'a>(lex: &mut logos::Lexer<'a, Tok<'a>>) -> Result<String, LexErrorKind> {
    let s = lex.slice();
    parse_string_body(&s[1..s.len() - 1])
}

/// Resolves the escapes of a string literal body (without its quotes).
pub fn parse_string_body(body: &str) -> Result<String, LexErrorKind> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('0') => out.push('\0'),
            Some('\\') => out.push('\\'),
            Some('"') => out.push('"'),
            Some('u') => {
                // \u{XXXX}
                let rest = chars.as_str();
                let code = rest
                    .strip_prefix('{')
                    .and_then(|r| r.split_once('}'))
                    .and_then(|(hex, _)| u32::from_str_radix(hex, 16).ok().map(|v| (hex.len(), v)))
                    .and_then(|(n, v)| char::from_u32(v).map(|c| (n, c)));
                match code {
                    Some((n, ch)) => {
                        out.push(ch);
                        for _ in 0..n + 2 {
                            chars.next();
                        }
                    }
                    None => return Err(LexErrorKind::InvalidEscape("\\u".into())),
                }
            }
            Some(other) => return Err(LexErrorKind::InvalidEscape(format!("\\{other}"))),
            None => return Err(LexErrorKind::InvalidEscape("\\".into())),
        }
    }
    Ok(out)
}

fn angle_var<'a>(lex: &mut logos::Lexer<'a, Tok<'a>>) -> Result<&'a str, LexErrorKind> {
    let s = lex.slice();
    let path = &s[1..s.len() - 1];
    // `{then}` is a syntax error; `<then>` must not quietly mean something else.
    if KEYWORDS.contains(&path) {
        return Err(LexErrorKind::KeywordVariable(path.to_string()));
    }
    Ok(path)
}

/// An integer literal. `9223372036854775808` (2^63) is accepted only right
/// after a `-`, so the most negative integer can be written; it lexes as
/// `i64::MIN`, which the grammar's negation folding leaves unchanged (and
/// which is the same value modulo 2^64 if the `-` is a binary minus).
fn int_literal<'a>(lex: &mut logos::Lexer<'a, Tok<'a>>) -> Result<i64, LexErrorKind> {
    let s = lex.slice();
    if let Ok(v) = s.parse::<i64>() {
        return Ok(v);
    }
    let after_minus = lex.source()[..lex.span().start].trim_end().ends_with('-');
    if after_minus && s.trim_start_matches('0') == "9223372036854775808" {
        return Ok(i64::MIN);
    }
    Err(LexErrorKind::IntOverflow)
}

fn unterminated<'a>(_: &mut logos::Lexer<'a, Tok<'a>>) -> Result<String, LexErrorKind> {
    Err(LexErrorKind::UnterminatedString)
}

fn ip_literal<'a>(lex: &mut logos::Lexer<'a, Tok<'a>>) -> Result<IpAddr, LexErrorKind> {
    lex.slice()
        .parse::<IpAddr>()
        .map_err(|_| LexErrorKind::InvalidIp(lex.slice().to_string()))
}

fn cidr_literal<'a>(lex: &mut logos::Lexer<'a, Tok<'a>>) -> Result<Cidr, LexErrorKind> {
    lex.slice()
        .parse::<Cidr>()
        .map_err(|e| LexErrorKind::InvalidCidr(e.to_string()))
}

impl Tok<'_> {
    /// How the token reads in a diagnostic ("`then`", "a string").
    pub fn describe(&self) -> String {
        match self {
            Tok::Ident(s) => format!("identifier `{s}`"),
            Tok::Path(s) => format!("path `{s}`"),
            Tok::AngleVar(s) => format!("variable `<{s}>`"),
            Tok::Int(v) => format!("integer `{v}`"),
            Tok::Str(_) => "a string".to_string(),
            Tok::Ip(ip) => format!("address `{ip}`"),
            Tok::Cidr(c) => format!("CIDR `{c}`"),
            Tok::AngleOpen => "`<` (opening a block)".to_string(),
            other => format!("`{}`", other.keyword_text().unwrap_or("?")),
        }
    }

    /// The fixed text of a keyword or punctuation token.
    pub fn keyword_text(&self) -> Option<&'static str> {
        Some(match self {
            Tok::Const => "const",
            Tok::Set => "set",
            Tok::Input => "input",
            Tok::Rule => "rule",
            Tok::Priority => "priority",
            Tok::When => "when",
            Tok::If => "if",
            Tok::Else => "else",
            Tok::Let => "let",
            Tok::Then => "then",
            Tok::Answer => "answer",
            Tok::Rewrite => "rewrite",
            Tok::Ttl => "ttl",
            Tok::Forward => "forward",
            Tok::Pool => "pool",
            Tok::Count => "count",
            Tok::Nxdomain => "nxdomain",
            Tok::Nodata => "nodata",
            Tok::Refuse => "refuse",
            Tok::Servfail => "servfail",
            Tok::Drop => "drop",
            Tok::Truncate => "truncate",
            Tok::Pass => "pass",
            Tok::Route => "route",
            Tok::Respond => "respond",
            Tok::Redirect => "redirect",
            Tok::SetHeader => "set_header",
            Tok::RemoveHeader => "remove_header",
            Tok::In => "in",
            Tok::Not => "not",
            Tok::And => "and",
            Tok::Or => "or",
            Tok::Matches => "matches",
            Tok::StartsWith => "starts_with",
            Tok::EndsWith => "ends_with",
            Tok::True => "true",
            Tok::False => "false",
            Tok::EqEq => "==",
            Tok::NotEq => "!=",
            Tok::Lt => "<",
            Tok::Le => "<=",
            Tok::Gt => ">",
            Tok::Ge => ">=",
            Tok::Plus => "+",
            Tok::Minus => "-",
            Tok::Star => "*",
            Tok::Slash => "/",
            Tok::Percent => "%",
            Tok::Assign => "=",
            Tok::Comma => ",",
            Tok::Colon => ":",
            Tok::LParen => "(",
            Tok::RParen => ")",
            Tok::LBracket => "[",
            Tok::RBracket => "]",
            Tok::LBrace => "{",
            Tok::RBrace => "}",
            Tok::AngleOpen => "<",
            _ => return None,
        })
    }
}

/// Every reserved word of the language, in one place. Editor grammars are
/// tested against this table so highlighting cannot drift from the lexer.
pub const KEYWORDS: &[&str] = &[
    "const",
    "set",
    "input",
    "rule",
    "priority",
    "when",
    "if",
    "else",
    "let",
    "then",
    "answer",
    "rewrite",
    "ttl",
    "forward",
    "pool",
    "count",
    "nxdomain",
    "nodata",
    "refuse",
    "servfail",
    "drop",
    "truncate",
    "pass",
    "route",
    "respond",
    "redirect",
    "set_header",
    "remove_header",
    "in",
    "not",
    "and",
    "or",
    "matches",
    "starts_with",
    "ends_with",
    "true",
    "false",
];

/// The path of the placeholder variable that replaces a rejected one; it
/// cannot be written in source, so the checker knows to stay quiet about it.
pub const ERROR_PATH: &str = "<error>";

/// A token with its byte offsets, as the grammar consumes it.
pub type Spanned<'input> = (u32, Tok<'input>, u32);

/// A streaming token source for the parser: tokens are produced on demand
/// (a 100 000-rule policy has millions of tokens; they are never all in
/// memory at once). Errors are collected in the vector it borrows; each bad
/// token is replaced by a placeholder of its class (or dropped) so parsing
/// goes on and one run reports every problem.
pub struct TokenStream<'input, 'e> {
    lexer: logos::Lexer<'input, Tok<'input>>,
    peeked: Option<Spanned<'input>>,
    errors: &'e mut Vec<LexError>,
}

impl<'input, 'e> TokenStream<'input, 'e> {
    /// Starts lexing `src`, collecting errors into `errors`.
    pub fn new(src: &'input str, errors: &'e mut Vec<LexError>) -> Self {
        TokenStream {
            lexer: Tok::lexer(src),
            peeked: None,
            errors,
        }
    }

    /// The next token straight from logos, errors turned into placeholders.
    fn raw_next(&mut self) -> Option<Spanned<'input>> {
        loop {
            let res = self.lexer.next()?;
            let span = Span::from(self.lexer.span());
            match res {
                Ok(tok) => return Some((span.start, tok, span.end)),
                Err(kind) => {
                    let placeholder = match &kind {
                        LexErrorKind::UnexpectedChar => None,
                        LexErrorKind::UnterminatedString | LexErrorKind::InvalidEscape(_) => {
                            Some(Tok::Str(String::new()))
                        }
                        LexErrorKind::IntOverflow => Some(Tok::Int(0)),
                        LexErrorKind::KeywordVariable(_) => Some(Tok::AngleVar(ERROR_PATH)),
                        LexErrorKind::InvalidIp(_) => {
                            Some(Tok::Ip(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)))
                        }
                        LexErrorKind::InvalidCidr(_) => Some(Tok::Cidr(Cidr::default())),
                    };
                    // Merge runs of unexpected characters into one error.
                    let merged = matches!(kind, LexErrorKind::UnexpectedChar)
                        && self.errors.last().is_some_and(|e: &LexError| {
                            e.kind == LexErrorKind::UnexpectedChar && e.span.end == span.start
                        });
                    if merged {
                        if let Some(last) = self.errors.last_mut() {
                            last.span.end = span.end;
                        }
                    } else {
                        self.errors.push(LexError { kind, span });
                    }
                    if let Some(tok) = placeholder {
                        return Some((span.start, tok, span.end));
                    }
                }
            }
        }
    }
}

impl<'input> Iterator for TokenStream<'input, '_> {
    type Item = Spanned<'input>;

    /// Each `<` followed by `then`, `if` or `let` becomes
    /// [`Tok::AngleOpen`]: `x < then` can never be a comparison (statements
    /// are not expressions), so this reading is unambiguous.
    fn next(&mut self) -> Option<Spanned<'input>> {
        let mut tok = match self.peeked.take() {
            Some(t) => t,
            None => self.raw_next()?,
        };
        if tok.1 == Tok::Lt {
            self.peeked = self.raw_next();
            if matches!(self.peeked, Some((_, Tok::Then | Tok::If | Tok::Let, _))) {
                tok.1 = Tok::AngleOpen;
            }
        }
        Some(tok)
    }
}

/// Lexes `src` completely (for tests, tools and error reporting; the
/// parser streams with [`TokenStream`]).
pub fn lex(src: &str) -> (Vec<Spanned<'_>>, Vec<LexError>) {
    let mut errors = Vec::new();
    let toks = TokenStream::new(src, &mut errors).collect();
    (toks, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(src: &str) -> Vec<Tok<'_>> {
        let (toks, errs) = lex(src);
        assert!(errs.is_empty(), "{errs:?}");
        toks.into_iter().map(|t| t.1).collect()
    }

    #[test]
    fn brace_and_angle_variables() {
        assert_eq!(
            kinds("{user.age} <user.age>"),
            vec![
                Tok::LBrace,
                Tok::Path("user.age"),
                Tok::RBrace,
                Tok::AngleVar("user.age")
            ]
        );
    }

    #[test]
    fn angle_block_versus_less_than() {
        assert_eq!(
            kinds("1 < 2 < then"),
            vec![Tok::Int(1), Tok::Lt, Tok::Int(2), Tok::AngleOpen, Tok::Then]
        );
        assert_eq!(kinds("< if")[0], Tok::AngleOpen);
        assert_eq!(kinds("<= then")[0], Tok::Le);
    }

    #[test]
    fn addresses() {
        assert_eq!(
            kinds("10.1.0.0/16")[0],
            Tok::Cidr("10.1.0.0/16".parse().unwrap())
        );
        assert_eq!(
            kinds("192.0.2.50")[0],
            Tok::Ip("192.0.2.50".parse().unwrap())
        );
        assert_eq!(
            kinds("2001:db8:100::/48")[0],
            Tok::Cidr("2001:db8:100::/48".parse().unwrap())
        );
        assert_eq!(kinds("::1")[0], Tok::Ip("::1".parse().unwrap()));
        assert_eq!(kinds("fe80::1")[0], Tok::Ip("fe80::1".parse().unwrap()));
        // One colon is punctuation (input declarations), not an address.
        assert_eq!(
            kinds("a : string"),
            vec![Tok::Ident("a"), Tok::Colon, Tok::Ident("string")]
        );
        assert_eq!(kinds("deadbeef"), vec![Tok::Ident("deadbeef")]);
    }

    #[test]
    fn bad_tokens_are_reported_and_replaced() {
        let (toks, errs) = lex("1.2.3.999 99999999999999999999 \"a\\q\" @ 10.0.0.1/8");
        let kinds: Vec<_> = errs.iter().map(|e| e.kind.clone()).collect();
        assert_eq!(
            kinds,
            vec![
                LexErrorKind::InvalidIp("1.2.3.999".into()),
                LexErrorKind::IntOverflow,
                LexErrorKind::InvalidEscape("\\q".into()),
                LexErrorKind::UnexpectedChar,
                LexErrorKind::InvalidCidr(
                    "10.0.0.1/8 has host bits set (did you mean 10.0.0.0/8?)".into()
                ),
            ]
        );
        assert_eq!(toks.len(), 4);
    }

    #[test]
    fn strings_and_comments() {
        assert_eq!(
            kinds("\"a\\\"b\\u{41}\" # comment\n// other\nx"),
            vec![Tok::Str("a\"bA".into()), Tok::Ident("x")]
        );
        let (_, errs) = lex("\"open");
        assert_eq!(errs[0].kind, LexErrorKind::UnterminatedString);
    }
}
