//! Parser tests: the two spellings give one tree, precedence and
//! associativity, and the shape of the example programs.

use dnspolicy_compiler::syntax::ast::{BinOp, ExprKind, Item, Program, StmtKind, UnOp};
use dnspolicy_compiler::syntax::parser::{parse, parse_expr};

fn tree(src: &str) -> Program {
    let (p, diags) = parse(src);
    assert!(diags.is_empty(), "{src}: {diags:?}");
    p.without_spans()
}

#[test]
fn design_card_equals_brace_form() {
    let card = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/design-card.dsl"
    ))
    .expect("examples/design-card.dsl");
    assert_eq!(card, r#"if <user.age> > 18 < then "VIP" >"#);
    assert_eq!(tree(&card), tree(r#"if {user.age} > 18 { then "VIP" }"#));
}

#[test]
fn spellings_mix_freely() {
    let braces = r#"rule r { if {a.b} >= 1 && {c} == "x" { let y = {a.b} + 1 then y } else { then nxdomain } }"#;
    let angles = r#"rule r < if <a.b> >= 1 && <c> == "x" < let y = <a.b> + 1 then y > else < then nxdomain > >"#;
    assert_eq!(tree(braces), tree(angles));
    // Parenthesised comparisons are fine inside angle blocks.
    assert_eq!(
        tree("if <a> > 1 < then (<a> > 2) >"),
        tree("if {a} > 1 { then ({a} > 2) }")
    );
}

#[test]
fn seed_example_shape() {
    let src = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/seed.dsl"))
        .expect("examples/seed.dsl");
    assert_eq!(
        src,
        r#"if {user.age} > 18 && {order.total} >= 100 { then "VIP" } else { if {user.tier} == "gold" { then "GOLD_VIP" } }"#
    );
    let p = tree(&src);
    assert_eq!(p.items.len(), 1);
    let Item::Stmt(s) = &p.items[0] else {
        panic!("a bare if")
    };
    let StmtKind::If {
        cond, else_branch, ..
    } = &s.kind
    else {
        panic!("an if")
    };
    assert!(matches!(cond.kind, ExprKind::Binary(BinOp::And, _, _)));
    assert!(else_branch.is_some());
}

fn shape(src: &str) -> String {
    fn go(e: &dnspolicy_compiler::syntax::ast::Expr) -> String {
        match &e.kind {
            ExprKind::Binary(op, a, b) => format!("({} {} {})", go(a), op.as_str(), go(b)),
            ExprKind::Unary(UnOp::Not, a) => format!("(!{})", go(a)),
            ExprKind::Unary(UnOp::Neg, a) => format!("(-{})", go(a)),
            ExprKind::Var(p) => p.to_string(),
            ExprKind::Ident(n) => n.to_string(),
            ExprKind::Int(i) => i.to_string(),
            ExprKind::Call(c) => format!(
                "{}({})",
                c.func.name,
                c.args.iter().map(go).collect::<Vec<_>>().join(",")
            ),
            other => format!("{other:?}"),
        }
    }
    go(&parse_expr(src).unwrap_or_else(|d| panic!("{src}: {d:?}")))
}

#[test]
fn precedence_and_associativity() {
    assert_eq!(shape("a || b && c"), "(a || (b && c))");
    assert_eq!(shape("a or b and not c"), "(a || (b && (!c)))");
    assert_eq!(shape("!{x} == 1"), "(!(x == 1))");
    assert_eq!(shape("1 + 2 * 3 - 4"), "((1 + (2 * 3)) - 4)");
    assert_eq!(shape("hash({c.s}) % 100 < 5"), "((hash(c.s) % 100) < 5)");
    assert_eq!(shape("-a - -3"), "((-a) - -3)");
    assert_eq!(shape("{q} not in s"), "(q not in s)");
    assert_eq!(shape("a / b / c"), "((a / b) / c)");
    // Comparisons do not chain.
    assert!(parse_expr("1 < 2 < 3").is_err());
    assert!(parse_expr("a == b == c").is_err());
}

#[test]
fn keywords_may_be_path_segments() {
    assert_eq!(
        shape("{user.set} == {app.then.if}"),
        "(user.set == app.then.if)"
    );
}

#[test]
fn several_syntax_errors_in_one_run() {
    let (_, diags) =
        parse("rule a { if {x} == { then 1 } }\nrule b { then }\nrule c { let = 3 }\n");
    let lines: Vec<_> = diags.iter().map(|d| d.code).collect();
    assert!(lines.len() >= 3, "{diags:?}");
}
