//! Source text to [`ast::Program`]: runs the lexer and the LALRPOP parser
//! and turns every lexer and parser error into a [`Diagnostic`].

use crate::diagnostics::Diagnostic;
use crate::syntax::ast::{self, ItemSink, Program};
use crate::syntax::lexer::{self, LexError, LexErrorKind, Spanned, Tok};
use crate::syntax::span::Span;
use lalrpop_util::{lalrpop_mod, ErrorRecovery, ParseError};

lalrpop_mod!(
    #[allow(
        clippy::all,
        clippy::pedantic,
        unused_qualifications,
        missing_docs,
        unused_parens
    )]
    #[allow(rust_2018_idioms, unreachable_pub, clippy::unwrap_used)]
    grammar,
    "/dnspolicy.rs"
);

/// Parses a whole file. Always returns a tree (with error nodes where the
/// parser recovered) and every diagnostic found.
pub fn parse(src: &str) -> (Program, Vec<Diagnostic>) {
    let mut items = Vec::new();
    let (diags, complete) = parse_items(src, &mut |item| items.push(item));
    if !complete {
        // The parser gave up: as before streaming, no tree.
        items = Vec::new();
    }
    items.shrink_to_fit();
    (Program { items }, diags)
}

/// Parses a file, handing each top-level item to `sink` as soon as it is
/// complete (in source order), so a caller can be done with an item before
/// the next is parsed. Returns every diagnostic found, and whether the
/// parse reached the end: when it did not (an error it could not recover
/// from), [`parse`] has no tree, and the items already handed over are all
/// there will be.
pub fn parse_items(src: &str, sink: &mut dyn ItemSink) -> (Vec<Diagnostic>, bool) {
    if u32::try_from(src.len()).is_err() {
        let d = Diagnostic::error("E0013", "file is larger than 4 GiB", Span::new(0, 0));
        return (vec![d], false);
    }
    let mut lex_errors = Vec::new();
    let mut recovered = Vec::new();
    let result = grammar::ProgramParser::new().parse(
        &mut recovered,
        sink,
        lexer::TokenStream::new(src, &mut lex_errors).map(Ok::<_, LexError>),
    );
    let mut diags: Vec<Diagnostic> = lex_errors.iter().map(lex_diagnostic).collect();
    if !recovered.is_empty() || result.is_err() {
        // Syntax errors are rare: only then are the tokens kept, for context.
        let (toks, _) = lexer::lex(src);
        let ctx = ErrCtx { toks: &toks };
        for ErrorRecovery { error, .. } in recovered {
            diags.push(ctx.parse_diagnostic(error));
        }
        if let Err(e) = &result {
            diags.push(ctx.parse_diagnostic(e.clone()));
        }
    }
    diags.sort_by_key(|d| (d.primary.span.start, d.primary.span.end));
    diags.dedup_by(|a, b| a.primary.span == b.primary.span && a.code == b.code);
    // Error recovery is coarse: after a syntax error, further syntax errors
    // on the same line are nearly always its echo, so only the first stays.
    let idx = crate::diagnostics::LineIndex::new(src);
    let mut last_syntax_line = None;
    diags.retain(|d| {
        if !matches!(d.code, "E0010" | "E0011" | "E0012") {
            return true;
        }
        let line = idx.line_col(d.primary.span.start).0;
        let echo = last_syntax_line == Some(line);
        last_syntax_line = Some(line);
        !echo
    });
    (diags, result.is_ok())
}

/// Where a file's declarations end, when it makes them all before its first
/// rule: the offset of the first `rule` keyword, provided none of the words
/// `const`, `set` or `input` appears after it (not even in a string or a
/// comment: this only decides whether the text before it holds every
/// declaration). `None` otherwise, when there is no rule, or when the text
/// before the rule does not lex.
pub fn declarations_end(src: &str) -> Option<usize> {
    let mut errors = Vec::new();
    let at = lexer::TokenStream::new(src, &mut errors)
        .find(|(_, t, _)| matches!(t, Tok::Rule))?
        .0 as usize;
    if !errors.is_empty() {
        return None;
    }
    let rest = src.get(at..)?.as_bytes();
    let word_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let has_word = |w: &[u8]| {
        rest.windows(w.len()).enumerate().any(|(i, win)| {
            win == w
                && (i == 0 || !word_char(rest[i - 1]))
                && rest.get(i + w.len()).is_none_or(|&b| !word_char(b))
        })
    };
    [&b"const"[..], b"set", b"input"]
        .iter()
        .all(|w| !has_word(w))
        .then_some(at)
}

/// Parses a single expression (used by tests and tools).
pub fn parse_expr(src: &str) -> Result<ast::Expr, Vec<Diagnostic>> {
    let (toks, lex_errors) = lexer::lex(src);
    if !lex_errors.is_empty() {
        return Err(lex_errors.iter().map(lex_diagnostic).collect());
    }
    let mut recovered = Vec::new();
    let ctx = ErrCtx { toks: &toks };
    // An expression has no items: the sink is never called.
    let mut no_items = |_: ast::Item| {};
    match grammar::ExprParser::new().parse(
        &mut recovered,
        &mut no_items,
        toks.iter().cloned().map(Ok::<_, LexError>),
    ) {
        Ok(e) if recovered.is_empty() => Ok(e),
        Ok(_) => Err(recovered
            .into_iter()
            .map(|r| ctx.parse_diagnostic(r.error))
            .collect()),
        Err(e) => Err(vec![ctx.parse_diagnostic(e)]),
    }
}

fn lex_diagnostic(e: &LexError) -> Diagnostic {
    match &e.kind {
        LexErrorKind::UnexpectedChar => Diagnostic::error("E0001", "unexpected character", e.span)
            .with_label("no token starts here"),
        LexErrorKind::UnterminatedString => {
            Diagnostic::error("E0002", "unterminated string literal", e.span)
                .with_label("this string has no closing `\"` on its line")
        }
        LexErrorKind::InvalidEscape(esc) => {
            Diagnostic::error("E0003", format!("invalid escape `{esc}` in string literal"), e.span)
                .with_label(format!("`{esc}` is not an escape"))
                .with_help("valid escapes are \\n \\t \\r \\0 \\\\ \\\" and \\u{XXXX}; for a regex, a raw string r\"...\" keeps backslashes as written")
        }
        LexErrorKind::IntOverflow => Diagnostic::error("E0004", "integer literal out of range", e.span)
            .with_label("does not fit in a 64-bit signed integer")
            .with_help("integers range from -9223372036854775808 to 9223372036854775807"),
        LexErrorKind::KeywordVariable(word) => {
            Diagnostic::error("E0007", format!("`{word}` is a keyword, not a variable name"), e.span)
                .with_label("keywords cannot be variables")
                .with_help(format!("give the injected variable a dotted path, e.g. `<app.{word}>`"))
        }
        LexErrorKind::InvalidIp(text) => {
            Diagnostic::error("E0005", format!("`{text}` is not a valid IP address"), e.span)
                .with_label("invalid address")
        }
        LexErrorKind::InvalidCidr(msg) => Diagnostic::error("E0006", "invalid CIDR literal", e.span)
            .with_label(msg.clone()),
    }
}

struct ErrCtx<'a, 'src> {
    toks: &'a [Spanned<'src>],
}

impl ErrCtx<'_, '_> {
    fn prev_token(&self, at: u32) -> Option<&Tok<'_>> {
        let i = self.toks.partition_point(|t| t.0 < at);
        i.checked_sub(1).map(|i| &self.toks[i].1)
    }

    fn next_token(&self, at: u32) -> Option<&Tok<'_>> {
        let i = self.toks.partition_point(|t| t.0 < at);
        self.toks.get(i).map(|t| &t.1)
    }

    fn has_angle_blocks(&self) -> bool {
        self.toks.iter().any(|t| t.1 == Tok::AngleOpen)
    }

    fn parse_diagnostic(&self, e: ParseError<u32, Tok<'_>, LexError>) -> Diagnostic {
        match e {
            ParseError::InvalidToken { location } => Diagnostic::error(
                "E0001",
                "unexpected character",
                Span::new(location, location + 1),
            ),
            ParseError::UnrecognizedEof { location, expected } => {
                let at = Span::new(location, location);
                Diagnostic::error("E0011", "unexpected end of file", at)
                    .with_label(format!("expected {}", expected_list(&expected)))
            }
            ParseError::UnrecognizedToken {
                token: (l, tok, r),
                expected,
            } => {
                let span = Span::new(l, r);
                let expects_operator = expected.iter().any(|e| e == "\"==\"");
                let expects_expr = expected.iter().any(|e| e == "\"<path>\"");
                if matches!(tok, Tok::AngleVar(_)) && expects_operator {
                    let Tok::AngleVar(p) = tok else {
                        unreachable!()
                    };
                    return Diagnostic::error(
                        "E0012",
                        format!("`<{p}>` reads as a variable here, not as a comparison"),
                        span,
                    )
                    .with_label("`<path>` without spaces is the angle spelling of a variable")
                    .with_help(format!(
                        "to compare, put spaces around the operators: `< {p} >`"
                    ));
                }
                if tok == Tok::Lt && expects_expr {
                    return Diagnostic::error("E0012", "`<` cannot start an expression", span)
                        .with_label("an angle-spelled variable has no spaces inside")
                        .with_help("write the variable as `<user.age>` (or `{user.age}`)");
                }
                let starts_expr = matches!(
                    tok,
                    Tok::Int(_)
                        | Tok::Str(_)
                        | Tok::Ip(_)
                        | Tok::Cidr(_)
                        | Tok::Ident(_)
                        | Tok::Path(_)
                        | Tok::AngleVar(_)
                        | Tok::LParen
                        | Tok::LBracket
                        | Tok::LBrace
                        | Tok::Minus
                        | Tok::True
                        | Tok::False
                );
                let angle_hint =
                    "inside `< ... >`, a `then` or `let` value stops before comparisons \
                                  and logic, and `>` closes the block; put such a value in \
                                  parentheses: `< then ({a} > 1) >`";
                if self.has_angle_blocks() && starts_expr && self.prev_token(l) == Some(&Tok::Gt) {
                    return Diagnostic::error(
                        "E0012",
                        format!("unexpected {} after `>`", tok.describe()),
                        span,
                    )
                    .with_label(format!("expected {}", expected_list(&expected)))
                    .with_help(angle_hint);
                }
                let comparison_like = matches!(
                    tok,
                    Tok::EqEq
                        | Tok::NotEq
                        | Tok::Le
                        | Tok::Ge
                        | Tok::Lt
                        | Tok::In
                        | Tok::Not
                        | Tok::And
                        | Tok::Or
                        | Tok::Matches
                        | Tok::StartsWith
                        | Tok::EndsWith
                );
                if comparison_like && expected.iter().any(|e| e == "\">\"") && !expects_operator {
                    return Diagnostic::error("E0012", format!("{} inside an angle block value", tok.describe()), span)
                        .with_label("a `then`/`let` value in `< ... >` cannot hold this operator unparenthesised")
                        .with_help(angle_hint);
                }
                let mut d =
                    Diagnostic::error("E0010", format!("unexpected {}", tok.describe()), span)
                        .with_label(format!("expected {}", expected_list(&expected)));
                if let Tok::Ident(word) = tok {
                    let next_is_assign = self.next_token(r) == Some(&Tok::Assign);
                    if next_is_assign {
                        d = d.with_help(format!(
                            "names are bound once, with `let {word} = ...`; there is no assignment"
                        ));
                    } else if let Some(kw) = closest_keyword(word) {
                        if expected.iter().any(|e| e.trim_matches('"') == kw) {
                            d = d.with_help(format!("did you mean the keyword `{kw}`?"));
                        }
                    }
                }
                if tok == Tok::Assign && expected.iter().any(|e| e == "\"==\"") {
                    d = d.with_help("to compare, use `==`");
                }
                d
            }
            ParseError::ExtraToken { token: (l, tok, r) } => Diagnostic::error(
                "E0010",
                format!("unexpected {}", tok.describe()),
                Span::new(l, r),
            ),
            ParseError::User { error } => lex_diagnostic(&error),
        }
    }
}

/// A keyword that `word` is a plausible misspelling of: at most one edit
/// for short words, two for long ones (`x` is not a typo of `if`).
fn closest_keyword(word: &str) -> Option<&'static str> {
    let limit = if word.chars().count() < 5 { 1 } else { 2 };
    lexer::KEYWORDS
        .iter()
        .map(|k| (crate::diagnostics::edit_distance(word, k), *k))
        .filter(|(d, k)| *d <= limit && k.len() > 1)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// "`then`, `if` or an expression": lalrpop's expected-terminal list,
/// readable and short.
fn expected_list(expected: &[String]) -> String {
    let mut names: Vec<String> = Vec::new();
    let mut has_expr = false;
    for e in expected {
        let t = e.trim_matches('"');
        match t {
            "int" | "string" | "ip" | "cidr" | "<path>" | "true" | "false" | "(" | "[" | "-"
            | "not" => has_expr = true,
            "ident" => names.push("a name".into()),
            "path" => names.push("a path".into()),
            "<block" => names.push("`<` (block)".into()),
            "{" if has_expr || expected.iter().any(|x| x == "\"<path>\"") => has_expr = true,
            other => names.push(format!("`{other}`")),
        }
    }
    if has_expr {
        names.push("an expression".into());
    }
    names.dedup();
    match names.len() {
        0 => "something else".into(),
        1 => names.remove(0),
        n if n > 8 => format!("{} or ...", names[..8].join(", ")),
        _ => {
            let last = names.pop().unwrap_or_default();
            format!("{} or {last}", names.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::declarations_end;

    #[test]
    fn declarations_end_only_where_nothing_is_declared_later() {
        let head = "const a = 1\nset s = [\"x.example\"]\n";
        let src = format!("{head}rule r when {{query.name}} in s {{ then refuse }}\n");
        assert_eq!(declarations_end(&src), Some(head.len()));
        // Words inside other words are not declarations.
        let src = "rule r when {query.name} == \"asset.example\" { then refuse }\n";
        assert_eq!(declarations_end(src), Some(0));
        // A declaration after a rule, or the word where one could be.
        for src in [
            "rule r when {query.name} in s { then refuse }\nset s = [\"x.example\"]\n",
            "rule r { then refuse }\ninput app.x : int\n",
            "rule r { then refuse } # a set of one\n",
            "then refuse\n",
        ] {
            assert_eq!(declarations_end(src), None, "{src}");
        }
    }
}
