//! The syntax tree, exactly as written. Every node carries its [`Span`].
//! The brace and angle spellings produce the same tree; only spans differ
//! ([`Program::without_spans`] erases them for comparisons).

use crate::ir::types::Cidr;
use crate::syntax::span::Span;
use std::net::IpAddr;

/// A whole policy file.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// Items in source order.
    pub items: Vec<Item>,
}

/// Where the parser puts each top-level item as soon as it is complete.
pub trait ItemSink {
    /// Takes the next item, in source order.
    fn item(&mut self, item: Item);
}

impl<F: FnMut(Item)> ItemSink for F {
    fn item(&mut self, item: Item) {
        self(item)
    }
}

/// A top-level item.
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    /// `const NAME = LITERAL`
    Const(ConstDecl),
    /// `set NAME = [ ... ]`
    Set(SetDecl),
    /// `input PATH : TYPE`
    Input(InputDecl),
    /// `rule NAME [priority N] [when GUARD] { ... }`
    Rule(RuleDecl),
    /// A bare statement (or a recovered syntax error, as
    /// [`StmtKind::Error`]); all of them form the implicit rule `main`.
    Stmt(Stmt),
}

/// An identifier with its span.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    /// The identifier text.
    pub name: String,
    /// Where it is written.
    pub span: Span,
}

/// `const NAME = VALUE`
#[derive(Clone, Debug, PartialEq)]
pub struct ConstDecl {
    /// The constant's name.
    pub name: Ident,
    /// Its value (must be a literal).
    pub value: Expr,
    /// The whole declaration.
    pub span: Span,
}

/// `set NAME = [ ... ]`
#[derive(Clone, Debug, PartialEq)]
pub struct SetDecl {
    /// The set's name.
    pub name: Ident,
    /// Its elements (a list of literals).
    pub value: Expr,
    /// The whole declaration.
    pub span: Span,
}

/// `input PATH : TYPE`
#[derive(Clone, Debug, PartialEq)]
pub struct InputDecl {
    /// The dotted path of the injected variable.
    pub path: Ident,
    /// Its declared type.
    pub ty: TypeExpr,
    /// The whole declaration.
    pub span: Span,
}

/// A type as written: `string`, `[cidr]`.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeExpr {
    /// The element type name.
    pub name: Ident,
    /// Whether it is written as a list, `[T]`.
    pub list: bool,
    /// The whole type.
    pub span: Span,
}

/// `rule NAME [priority N] [when GUARD] BLOCK`
#[derive(Clone, Debug, PartialEq)]
pub struct RuleDecl {
    /// The rule's name, unique in the file.
    pub name: Ident,
    /// `priority N`, with the span of `N`.
    pub priority: Option<(i64, Span)>,
    /// A word after the priority: `log` (its decisions are always in the
    /// decision log); the checker refuses any other. Boxed: rare, and a
    /// 100 000-rule policy's tree holds a rule per line.
    pub flag: Option<Box<Ident>>,
    /// `when GUARD`.
    pub guard: Option<Expr>,
    /// The body.
    pub body: Block,
    /// The whole rule.
    pub span: Span,
}

/// `{ stmt... }` or `< stmt... >`.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// Statements in order.
    pub stmts: Vec<Stmt>,
    /// From the opening to the closing delimiter.
    pub span: Span,
}

/// A statement.
#[derive(Clone, Debug, PartialEq)]
pub struct Stmt {
    /// What kind.
    pub kind: StmtKind,
    /// Where.
    pub span: Span,
}

/// The kinds of statement.
#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    /// `if COND BLOCK [else ...]`
    If {
        /// The condition.
        cond: Expr,
        /// Taken when the condition is true.
        then_block: Block,
        /// `else BLOCK` or `else if ...`.
        else_branch: Option<Else>,
    },
    /// `let NAME = EXPR`
    Let {
        /// The new local's name.
        name: Ident,
        /// Its value.
        value: Expr,
    },
    /// `then ACTION`
    Then(Action),
    /// A syntax error the parser recovered from.
    Error,
}

/// The `else` part of an `if`.
#[derive(Clone, Debug, PartialEq)]
pub enum Else {
    /// `else BLOCK`
    Block(Block),
    /// `else if ...`
    If(Box<Stmt>),
}

/// An action after `then`.
#[derive(Clone, Debug, PartialEq)]
pub struct Action {
    /// What kind.
    pub kind: ActionKind,
    /// Where (without the `then`).
    pub span: Span,
}

/// The kinds of action.
#[derive(Clone, Debug, PartialEq)]
pub enum ActionKind {
    /// A plain value handed to the caller (`then "VIP"`).
    Value(Expr),
    /// `answer TYPE DATA[, DATA...] [ttl N]`
    Answer {
        /// The record type mnemonic.
        rtype: Ident,
        /// Record data, one per record.
        data: Vec<Expr>,
        /// `ttl N`.
        ttl: Option<Expr>,
    },
    /// `rewrite TARGET [ttl N]`
    Rewrite {
        /// The target name.
        target: Expr,
        /// `ttl N`.
        ttl: Option<Expr>,
    },
    /// `forward POOL`
    Forward(Expr),
    /// `pool NAME [PICK [KEY]] [count N] [ttl N]` (the optional operands
    /// boxed: this variant sized every statement, and a 100 000-rule
    /// policy's tree holds one per rule).
    Pool {
        /// The answer pool's name.
        name: Ident,
        /// `all`, `weighted`, `sticky`, `failover` or `nearest`.
        pick: Option<Ident>,
        /// The key after `sticky`.
        key: Option<Box<Expr>>,
        /// `count N`.
        count: Option<Box<Expr>>,
        /// `ttl N`.
        ttl: Option<Box<Expr>>,
    },
    /// `nxdomain`
    Nxdomain,
    /// `nodata`
    Nodata,
    /// `refuse`
    Refuse,
    /// `servfail`
    Servfail,
    /// `drop`
    Drop,
    /// `truncate`
    Truncate,
    /// `pass`
    Pass,
    /// `route POOL [set_header NAME VALUE | remove_header NAME]...` (HTTP)
    Route {
        /// The upstream pool.
        pool: Expr,
        /// Header edits on the request sent upstream, in order.
        edits: Vec<HeaderEdit>,
    },
    /// `respond STATUS [BODY]` (HTTP)
    Respond {
        /// The status code.
        status: Expr,
        /// The body.
        body: Option<Expr>,
    },
    /// `redirect STATUS URL` (HTTP)
    Redirect {
        /// The status code (301, 302, 303, 307 or 308).
        status: Expr,
        /// The `Location`.
        url: Expr,
    },
}

/// A header edit after `route POOL`.
#[derive(Clone, Debug, PartialEq)]
pub enum HeaderEdit {
    /// `set_header NAME VALUE`: replaces every field of that name.
    Set {
        /// The header name.
        name: Expr,
        /// Its value.
        value: Expr,
    },
    /// `remove_header NAME`
    Remove(Expr),
}

/// An expression.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    /// What kind.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

/// The kinds of expression.
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// An integer literal.
    Int(i64),
    /// A string literal (escapes resolved).
    Str(Box<str>),
    /// `true` / `false`.
    Bool(bool),
    /// An address literal.
    Ip(IpAddr),
    /// A CIDR literal.
    Cidr(Cidr),
    /// `{a.b}` or `<a.b>`: a context path or injected variable.
    Var(Box<str>),
    /// A bare identifier: a const, set, local, or record type mnemonic.
    Ident(Box<str>),
    /// `f(args)` (boxed: calls are rare, and every other node stays small).
    Call(Box<Call>),
    /// `[a, b, ...]`
    List(Box<[Expr]>),
    /// A prefix operator.
    Unary(UnOp, Box<Expr>),
    /// A binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// A syntax error the parser recovered from.
    Error,
}

/// A function call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The function's name.
    pub func: Ident,
    /// The arguments.
    pub args: Vec<Expr>,
}

/// Prefix operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnOp {
    /// `!` / `not`
    Not,
    /// `-`
    Neg,
}

/// Binary operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `||` / `or`
    Or,
    /// `&&` / `and`
    And,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `in`
    In,
    /// `not in`
    NotIn,
    /// `matches`
    Matches,
    /// `starts_with`
    StartsWith,
    /// `ends_with`
    EndsWith,
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `%`
    Rem,
}

impl BinOp {
    /// The operator as written.
    pub fn as_str(self) -> &'static str {
        match self {
            BinOp::Or => "||",
            BinOp::And => "&&",
            BinOp::Eq => "==",
            BinOp::Ne => "!=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::In => "in",
            BinOp::NotIn => "not in",
            BinOp::Matches => "matches",
            BinOp::StartsWith => "starts_with",
            BinOp::EndsWith => "ends_with",
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::Rem => "%",
        }
    }
}

impl Program {
    /// A copy with every span set to zero, for comparing trees written in
    /// different spellings or layouts.
    pub fn without_spans(&self) -> Program {
        let mut p = self.clone();
        for item in &mut p.items {
            match item {
                Item::Const(c) => {
                    c.span = Span::default();
                    c.name.span = Span::default();
                    zero_expr(&mut c.value);
                }
                Item::Set(s) => {
                    s.span = Span::default();
                    s.name.span = Span::default();
                    zero_expr(&mut s.value);
                }
                Item::Input(i) => {
                    i.span = Span::default();
                    i.path.span = Span::default();
                    i.ty.span = Span::default();
                    i.ty.name.span = Span::default();
                }
                Item::Rule(r) => {
                    r.span = Span::default();
                    r.name.span = Span::default();
                    if let Some((_, s)) = &mut r.priority {
                        *s = Span::default();
                    }
                    if let Some(g) = &mut r.guard {
                        zero_expr(g);
                    }
                    zero_block(&mut r.body);
                }
                Item::Stmt(s) => zero_stmt(s),
            }
        }
        p
    }
}

fn zero_block(b: &mut Block) {
    b.span = Span::default();
    b.stmts.iter_mut().for_each(zero_stmt);
}

fn zero_stmt(s: &mut Stmt) {
    s.span = Span::default();
    match &mut s.kind {
        StmtKind::If {
            cond,
            then_block,
            else_branch,
        } => {
            zero_expr(cond);
            zero_block(then_block);
            match else_branch {
                Some(Else::Block(b)) => zero_block(b),
                Some(Else::If(s)) => zero_stmt(s),
                None => {}
            }
        }
        StmtKind::Let { name, value } => {
            name.span = Span::default();
            zero_expr(value);
        }
        StmtKind::Then(a) => {
            a.span = Span::default();
            match &mut a.kind {
                ActionKind::Value(e) | ActionKind::Forward(e) => zero_expr(e),
                ActionKind::Answer { rtype, data, ttl } => {
                    rtype.span = Span::default();
                    data.iter_mut().for_each(zero_expr);
                    ttl.iter_mut().for_each(zero_expr);
                }
                ActionKind::Pool {
                    name,
                    pick,
                    key,
                    count,
                    ttl,
                } => {
                    name.span = Span::default();
                    if let Some(p) = pick {
                        p.span = Span::default();
                    }
                    for e in [key, count, ttl].into_iter().flatten() {
                        zero_expr(e);
                    }
                }
                ActionKind::Route { pool, edits } => {
                    zero_expr(pool);
                    for e in edits {
                        match e {
                            HeaderEdit::Set { name, value } => {
                                zero_expr(name);
                                zero_expr(value);
                            }
                            HeaderEdit::Remove(name) => zero_expr(name),
                        }
                    }
                }
                ActionKind::Respond { status, body } => {
                    zero_expr(status);
                    body.iter_mut().for_each(zero_expr);
                }
                ActionKind::Redirect { status, url } => {
                    zero_expr(status);
                    zero_expr(url);
                }
                ActionKind::Rewrite { target, ttl } => {
                    zero_expr(target);
                    ttl.iter_mut().for_each(zero_expr);
                }
                _ => {}
            }
        }
        StmtKind::Error => {}
    }
}

fn zero_expr(e: &mut Expr) {
    e.span = Span::default();
    match &mut e.kind {
        ExprKind::Call(call) => {
            call.func.span = Span::default();
            call.args.iter_mut().for_each(zero_expr);
        }
        ExprKind::List(items) => items.iter_mut().for_each(zero_expr),
        ExprKind::Unary(_, a) => zero_expr(a),
        ExprKind::Binary(_, a, b) => {
            zero_expr(a);
            zero_expr(b);
        }
        _ => {}
    }
}

/// Builds a binary node spanning `l..r` (used by the grammar's actions).
pub(crate) fn bin(op: BinOp, a: Expr, b: Expr, l: u32, r: u32) -> Expr {
    Expr {
        kind: ExprKind::Binary(op, Box::new(a), Box::new(b)),
        span: Span::new(l, r),
    }
}
