//! The canonical layout of a policy (`dnspolicy fmt`, and document
//! formatting in `dnspolicy lsp`): braces (never the angle spelling), four
//! spaces per level, `&&` `||` `!`, one space around binary operators,
//! parentheses only where precedence needs them, one item or statement per
//! line, a block holding a single `then` on its line when it fits, lists
//! one element per line when they were written over several lines, at most
//! one blank line kept where the source had any. Comments are kept: a
//! comment on a line of its own stays before what follows it, a comment at
//! the end of a line stays at the end of that line.
//!
//! The tree is the parser's ([`crate::syntax::ast`]); the comments come
//! from the gaps between tokens, so formatting never changes what a policy
//! means: `parse(format(x))` is the same tree as `parse(x)` (spans aside),
//! and `format(format(x)) == format(x)`.

use crate::diagnostics::{Diagnostic, Severity};
use crate::syntax::ast::*;
use crate::syntax::lexer::lex;
use crate::syntax::parser::parse;
use crate::syntax::span::Span;

/// Widest line the layout aims for (a single-`then` block joins its line
/// only when the result fits).
const WIDTH: usize = 100;
const INDENT: &str = "    ";
/// Where a trailing comment starts, until `align` places it.
const MARK: char = '\u{1}';

/// A comment in the source.
#[derive(Debug)]
struct Comment {
    start: u32,
    text: String,
    /// Nothing but whitespace before it on its line.
    own_line: bool,
    /// A blank line right before it (own-line comments).
    blank_before: bool,
}

/// Formats `src`. Syntax errors are returned as they are: a file that does
/// not parse is not rewritten.
pub fn format(src: &str) -> Result<String, Vec<Diagnostic>> {
    let (program, diags) = parse(src);
    if diags.iter().any(|d| d.severity == Severity::Error) {
        return Err(diags);
    }
    let mut f = Formatter {
        src,
        comments: comments(src),
        next: 0,
        out: String::new(),
        depth: 0,
    };
    let mut prev_end = None;
    for item in &program.items {
        let span = item_span(item);
        f.leading(span.start, prev_end);
        f.item(item);
        f.trailing(span.end);
        f.out.push('\n');
        prev_end = Some(span.end);
    }
    f.leading(u32::MAX, prev_end);
    let mut out = align(f.out.trim_end()).trim_end().to_string();
    out.push('\n');
    if out.trim().is_empty() {
        out.clear();
    }
    Ok(out)
}

/// Aligns the trailing comments of consecutive lines two spaces after the
/// longest code among them (as gofmt does), so a column of comments stays
/// a column.
fn align(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = String::with_capacity(text.len() + 64);
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].contains(MARK) {
            out.push_str(lines[i]);
            out.push('\n');
            i += 1;
            continue;
        }
        let run_end = (i..lines.len())
            .find(|&j| !lines[j].contains(MARK))
            .unwrap_or(lines.len());
        let width = lines[i..run_end]
            .iter()
            .map(|l| l.split(MARK).next().unwrap_or("").chars().count())
            .max()
            .unwrap_or(0);
        for l in &lines[i..run_end] {
            let (code, comment) = l.split_once(MARK).unwrap_or((l, ""));
            out.push_str(code);
            for _ in code.chars().count()..width + 2 {
                out.push(' ');
            }
            out.push_str(comment);
            out.push('\n');
        }
        i = run_end;
    }
    out
}

fn item_span(item: &Item) -> Span {
    match item {
        Item::Const(c) => c.span,
        Item::Set(s) => s.span,
        Item::Input(i) => i.span,
        Item::Rule(r) => r.span,
        Item::Stmt(s) => s.span,
    }
}

/// The comments in the gaps between tokens.
fn comments(src: &str) -> Vec<Comment> {
    let (toks, _) = lex(src);
    let mut gaps = Vec::new();
    let mut at = 0u32;
    for (s, _, e) in &toks {
        gaps.push((at, *s));
        at = *e;
    }
    gaps.push((at, src.len() as u32));
    let mut out = Vec::new();
    for (a, b) in gaps {
        let gap = &src[a as usize..b as usize];
        let mut i = 0;
        while i < gap.len() {
            let rest = &gap[i..];
            if rest.starts_with('#') || rest.starts_with("//") {
                let len = rest.find('\n').unwrap_or(rest.len());
                let start = a as usize + i;
                let line_start = src[..start].rfind('\n').map_or(0, |n| n + 1);
                let own_line = src[line_start..start].trim().is_empty();
                let before = &src[..line_start];
                let blank_before = own_line
                    && before.ends_with('\n')
                    && before[..before.len() - 1]
                        .rsplit('\n')
                        .next()
                        .is_some_and(|l| l.trim().is_empty())
                    && line_start > 1;
                out.push(Comment {
                    start: start as u32,
                    text: rest[..len].trim_end().to_string(),
                    own_line,
                    blank_before,
                });
                i += len;
            } else {
                i += rest.chars().next().map_or(1, char::len_utf8);
            }
        }
    }
    out
}

struct Formatter<'s> {
    src: &'s str,
    comments: Vec<Comment>,
    /// The first comment not yet written.
    next: usize,
    out: String,
    depth: usize,
}

/// Binding strength, loosest first (the grammar's levels).
fn level(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, ..) => match op {
            BinOp::Or => 1,
            BinOp::And => 2,
            BinOp::Add | BinOp::Sub => 5,
            BinOp::Mul | BinOp::Div | BinOp::Rem => 6,
            _ => 4,
        },
        ExprKind::Unary(UnOp::Not, _) => 3,
        ExprKind::Unary(UnOp::Neg, _) => 7,
        ExprKind::Int(v) if *v < 0 => 7,
        _ => 8,
    }
}

impl Formatter<'_> {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str(INDENT);
        }
    }

    /// Writes the comments before `pos` on lines of their own (a blank
    /// line kept where the source had one), then the blank line before the
    /// code at `pos` when the source had one there.
    fn leading(&mut self, pos: u32, prev_end: Option<u32>) {
        self.leading_then(pos, prev_end, true);
    }

    /// [`Formatter::leading`]; `blank_after` false before a closing
    /// delimiter (no blank line before `}` or `]`).
    fn leading_then(&mut self, pos: u32, prev_end: Option<u32>, blank_after: bool) {
        let mut last = prev_end;
        while let Some(c) = self.comments.get(self.next).filter(|c| c.start < pos) {
            let blank = c.blank_before && !self.out.is_empty() && !self.just_opened();
            let text = c.text.clone();
            let start = c.start;
            self.next += 1;
            if blank {
                self.blank_line();
            }
            self.indent();
            self.out.push_str(&text);
            self.out.push('\n');
            last = Some(start + text.len() as u32);
        }
        if pos == u32::MAX || !blank_after {
            return;
        }
        if let Some(end) = last {
            let gap = &self.src[end.min(pos) as usize..pos as usize];
            if gap.matches('\n').count() > 1 && !self.just_opened() {
                self.blank_line();
            }
        }
    }

    /// Right after `{` or `[` and its line break: no blank line here.
    fn just_opened(&self) -> bool {
        let t = self.out.trim_end_matches(' ');
        t.ends_with("{\n") || t.ends_with("[\n")
    }

    fn blank_line(&mut self) {
        if !self.out.is_empty() && !self.out.ends_with("\n\n") {
            self.out.push('\n');
        }
    }

    /// Appends a comment that ends the source line of `end`, if any.
    fn trailing(&mut self, end: u32) {
        self.trailing_before(end, u32::MAX);
    }

    /// [`Formatter::trailing`] for comments before `limit` only (after an
    /// opening `{`: the comments of its own line, not those after the
    /// statements that follow on it).
    fn trailing_before(&mut self, end: u32, limit: u32) {
        while let Some(c) = self.comments.get(self.next) {
            let between = &self.src[end.min(c.start) as usize..c.start as usize];
            if c.own_line || between.contains('\n') || c.start >= limit {
                return;
            }
            // Marked, then aligned with the trailing comments of the
            // lines around it (`align`).
            self.out.push(MARK);
            self.out.push_str(&c.text.clone());
            self.next += 1;
        }
    }

    /// Whether a comment lies inside `span` (a block with one cannot be
    /// joined onto one line).
    fn has_comment(&self, span: Span) -> bool {
        self.comments[self.next..]
            .iter()
            .any(|c| c.start > span.start && c.start < span.end)
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Const(c) => {
                let v = self.expr(&c.value, 0);
                self.line(&format!("const {} = {v}", c.name.name));
            }
            Item::Set(s) => {
                self.indent();
                self.out.push_str(&format!("set {} = ", s.name.name));
                self.list_or_expr(&s.value);
            }
            Item::Input(i) => {
                let ty = if i.ty.list {
                    format!("[{}]", i.ty.name.name)
                } else {
                    i.ty.name.name.clone()
                };
                self.line(&format!("input {} : {ty}", i.path.name));
            }
            Item::Rule(r) => {
                let mut head = format!("rule {}", r.name.name);
                if let Some((p, _)) = r.priority {
                    head.push_str(&format!(" priority {p}"));
                }
                if let Some(f) = &r.flag {
                    head.push_str(&format!(" {}", f.name));
                }
                if let Some(g) = &r.guard {
                    head.push_str(&format!(" when {}", self.expr(g, 0)));
                }
                self.indent();
                self.out.push_str(&head);
                // A rule's body always gets lines of its own.
                self.block(&r.body, false);
            }
            Item::Stmt(s) => self.stmt(s),
        }
    }

    fn line(&mut self, text: &str) {
        self.indent();
        self.out.push_str(text);
    }

    /// A multi-line list stays one element per line (its comments with
    /// their elements); anything else is written on one line.
    fn list_or_expr(&mut self, e: &Expr) {
        let multi = matches!(&e.kind, ExprKind::List(items) if !items.is_empty())
            && e.span.text(self.src).contains('\n');
        let ExprKind::List(items) = &e.kind else {
            let v = self.expr(e, 0);
            self.out.push_str(&v);
            return;
        };
        if !multi {
            let v = self.expr(e, 0);
            self.out.push_str(&v);
            return;
        }
        self.out.push('[');
        self.trailing_before(e.span.start + 1, items[0].span.start);
        self.out.push('\n');
        self.depth += 1;
        let mut prev = None;
        for item in items.iter() {
            self.leading(item.span.start, prev);
            let v = self.expr(item, 0);
            self.indent();
            self.out.push_str(&v);
            self.out.push(',');
            // A comma in the source after the element is part of its line.
            let end = self.src[item.span.end as usize..e.span.end as usize]
                .find(',')
                .map_or(item.span.end, |i| item.span.end + i as u32 + 1);
            self.trailing(end);
            self.out.push('\n');
            prev = Some(end);
        }
        self.leading_then(e.span.end - 1, prev, false);
        self.depth -= 1;
        self.indent();
        self.out.push(']');
    }

    /// ` { ... }` after a header already written; on the header's line
    /// when `inline` allows it, the block holds one `then` and no comment,
    /// and it fits. Whether it went on that line.
    fn block(&mut self, b: &Block, inline: bool) -> bool {
        if b.stmts.is_empty() && !self.has_comment(b.span) {
            self.out.push_str(" {}");
            return inline;
        }
        if let [one @ Stmt {
            kind: StmtKind::Then(_),
            ..
        }] = b.stmts.as_slice()
        {
            // `inline` comes from `chain_fits`, which measured the whole line.
            if inline && !self.has_comment(b.span) {
                let body = self.stmt_text(one);
                self.out.push_str(&format!(" {{ {body} }}"));
                return true;
            }
        }
        self.out.push_str(" {");
        let first = b.stmts.first().map_or(b.span.end, |s| s.span.start);
        self.trailing_before(b.span.start + 1, first);
        self.out.push('\n');
        self.depth += 1;
        let mut prev = Some(b.span.start + 1);
        for s in &b.stmts {
            self.leading(s.span.start, prev);
            self.stmt(s);
            self.trailing(s.span.end);
            self.out.push('\n');
            prev = Some(s.span.end);
        }
        self.leading_then(b.span.end.saturating_sub(1), prev, false);
        self.depth -= 1;
        self.indent();
        self.out.push('}');
        false
    }

    /// A statement that needs no block of its own, as text.
    fn stmt_text(&self, s: &Stmt) -> String {
        match &s.kind {
            StmtKind::Then(a) => format!("then {}", self.action(a)),
            StmtKind::Let { name, value } => format!("let {} = {}", name.name, self.expr(value, 0)),
            _ => String::new(),
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::If {
                cond,
                then_block,
                else_branch,
            } => {
                self.indent();
                let c = self.expr(cond, 0);
                let inline = self.chain_fits(s);
                self.out.push_str(&format!("if {c}"));
                self.block(then_block, inline);
                self.else_branch(else_branch.as_ref(), inline);
            }
            StmtKind::Then(_) | StmtKind::Let { .. } => {
                let t = self.stmt_text(s);
                self.line(&t);
            }
            StmtKind::Error => {}
        }
    }

    /// Whether an `if`/`else if`/`else` chain goes on one line: every block
    /// is a single `then` without comments, and the whole line fits.
    fn chain_fits(&self, s: &Stmt) -> bool {
        let mut text = INDENT.repeat(self.depth);
        let mut at = s;
        loop {
            let StmtKind::If {
                cond,
                then_block,
                else_branch,
            } = &at.kind
            else {
                return false;
            };
            text.push_str(&format!("if {} ", self.expr(cond, 0)));
            if !self.one_then(then_block, &mut text) {
                return false;
            }
            match else_branch {
                None => break,
                Some(Else::Block(b)) => {
                    text.push_str(" else ");
                    if !self.one_then(b, &mut text) {
                        return false;
                    }
                    break;
                }
                Some(Else::If(next)) => {
                    text.push_str(" else ");
                    at = next;
                }
            }
        }
        text.chars().count() <= WIDTH
    }

    /// Appends `{ then ... }` for a block that is one `then` and no comment.
    fn one_then(&self, b: &Block, text: &mut String) -> bool {
        match b.stmts.as_slice() {
            [one @ Stmt {
                kind: StmtKind::Then(_),
                ..
            }] if !self.has_comment(b.span) => {
                text.push_str(&format!("{{ {} }}", self.stmt_text(one)));
                true
            }
            _ => false,
        }
    }

    /// The `else` part; its blocks go on one line only when the `if`'s did.
    fn else_branch(&mut self, e: Option<&Else>, inline: bool) {
        match e {
            None => {}
            Some(Else::Block(b)) => {
                self.out.push_str(" else");
                self.block(b, inline);
            }
            Some(Else::If(s)) => {
                if let StmtKind::If {
                    cond,
                    then_block,
                    else_branch,
                } = &s.kind
                {
                    let c = self.expr(cond, 0);
                    self.out.push_str(&format!(" else if {c}"));
                    let inline = self.block(then_block, inline);
                    self.else_branch(else_branch.as_ref(), inline);
                }
            }
        }
    }

    fn action(&self, a: &Action) -> String {
        let u = |e: &Expr| self.expr(e, 7);
        let ttl = |t: Option<&Expr>| t.map_or(String::new(), |t| format!(" ttl {}", u(t)));
        match &a.kind {
            ActionKind::Value(e) => self.expr(e, 0),
            ActionKind::Answer {
                rtype,
                data,
                ttl: t,
            } => {
                let d: Vec<String> = data.iter().map(u).collect();
                format!("answer {} {}{}", rtype.name, d.join(", "), ttl(t.as_ref()))
            }
            ActionKind::Rewrite { target, ttl: t } => {
                format!("rewrite {}{}", u(target), ttl(t.as_ref()))
            }
            ActionKind::Forward(p) => format!("forward {}", u(p)),
            ActionKind::Pool {
                name,
                pick,
                key,
                count,
                ttl: t,
            } => {
                let mut s = format!("pool {}", pool_name(&name.name));
                if let Some(p) = pick {
                    s.push(' ');
                    s.push_str(&p.name);
                }
                if let Some(k) = key {
                    s.push(' ');
                    s.push_str(&u(k));
                }
                if let Some(c) = count {
                    s.push_str(&format!(" count {}", u(c)));
                }
                s + &ttl(t.as_deref())
            }
            ActionKind::Nxdomain => "nxdomain".into(),
            ActionKind::Nodata => "nodata".into(),
            ActionKind::Refuse => "refuse".into(),
            ActionKind::Servfail => "servfail".into(),
            ActionKind::Drop => "drop".into(),
            ActionKind::Truncate => "truncate".into(),
            ActionKind::Pass => "pass".into(),
            ActionKind::Route { pool, edits } => {
                let mut s = format!("route {}", u(pool));
                for e in edits {
                    match e {
                        HeaderEdit::Set { name, value } => {
                            s.push_str(&format!(" set_header {} {}", u(name), u(value)))
                        }
                        HeaderEdit::Remove(name) => {
                            s.push_str(&format!(" remove_header {}", u(name)))
                        }
                    }
                }
                s
            }
            ActionKind::Respond { status, body } => match body {
                Some(b) => format!("respond {} {}", u(status), u(b)),
                None => format!("respond {}", u(status)),
            },
            ActionKind::Redirect { status, url } => format!("redirect {} {}", u(status), u(url)),
        }
    }

    /// `e` as text, parenthesised when it binds looser than `min`.
    fn expr(&self, e: &Expr, min: u8) -> String {
        let text = self.bare(e);
        if level(e) < min {
            format!("({text})")
        } else {
            text
        }
    }

    fn bare(&self, e: &Expr) -> String {
        match &e.kind {
            ExprKind::Int(v) => v.to_string(),
            ExprKind::Str(s) => quote(s),
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Ip(ip) => ip.to_string(),
            ExprKind::Cidr(c) => c.to_string(),
            ExprKind::Var(p) => format!("{{{p}}}"),
            ExprKind::Ident(n) => n.to_string(),
            ExprKind::Call(c) => {
                let args: Vec<String> = c.args.iter().map(|a| self.expr(a, 0)).collect();
                format!("{}({})", c.func.name, args.join(", "))
            }
            ExprKind::List(items) => {
                let v: Vec<String> = items.iter().map(|i| self.expr(i, 0)).collect();
                format!("[{}]", v.join(", "))
            }
            // `!` applies to a comparison or less: anything binary gets
            // parentheses, so `!(a == b)` reads as it parses.
            ExprKind::Unary(UnOp::Not, x) => {
                let inner = if matches!(x.kind, ExprKind::Binary(..)) {
                    9
                } else {
                    3
                };
                format!("!{}", self.expr(x, inner))
            }
            ExprKind::Unary(UnOp::Neg, x) => {
                // `- -5` must not become `--5`, and `-(5)` folds to a literal
                // when read back: keep a negated literal in parentheses.
                let inner = self.expr(x, 8);
                if inner.starts_with('-') || matches!(x.kind, ExprKind::Int(_)) {
                    format!("-({inner})")
                } else {
                    format!("-{inner}")
                }
            }
            ExprKind::Binary(op, a, b) => {
                let (l, r) = match op {
                    BinOp::Or => (1, 2),
                    BinOp::And => (2, 3),
                    BinOp::Add | BinOp::Sub => (5, 6),
                    BinOp::Mul | BinOp::Div | BinOp::Rem => (6, 7),
                    // Comparisons do not chain: both sides are sums.
                    _ => (5, 5),
                };
                format!("{} {} {}", self.expr(a, l), op.as_str(), self.expr(b, r))
            }
            ExprKind::Error => String::new(),
        }
    }
}

/// A pool name as written: a bare word when it is one, else a string.
fn pool_name(n: &str) -> String {
    let word = n
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !crate::syntax::lexer::KEYWORDS.contains(&n);
    if word {
        n.to_string()
    } else {
        quote(n)
    }
}

/// A string literal that reads back as `s`.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The keyword an action starts with (`value` for a value verdict), for
/// diagnostics.
pub(crate) fn action_word(k: &ActionKind) -> &'static str {
    match k {
        ActionKind::Value(_) => "value",
        ActionKind::Answer { .. } => "answer",
        ActionKind::Rewrite { .. } => "rewrite",
        ActionKind::Forward(_) => "forward",
        ActionKind::Pool { .. } => "pool",
        ActionKind::Nxdomain => "nxdomain",
        ActionKind::Nodata => "nodata",
        ActionKind::Refuse => "refuse",
        ActionKind::Servfail => "servfail",
        ActionKind::Drop => "drop",
        ActionKind::Truncate => "truncate",
        ActionKind::Pass => "pass",
        ActionKind::Route { .. } => "route",
        ActionKind::Respond { .. } => "respond",
        ActionKind::Redirect { .. } => "redirect",
    }
}
