//! Reading a master file for the operator: the origin when the file has no
//! `$ORIGIN` (the SOA owner), and where an error is (file:line and the
//! line's text), which hickory-proto's zone parser does not say.

use hickory_proto::rr::Name;
use hickory_proto::serialize::txt::Parser;

/// A record line's first token, when the line starts with an owner (not
/// with blank space, a directive or a comment).
fn owner_token(line: &str) -> Option<&str> {
    if line.starts_with(char::is_whitespace) || line.starts_with(['$', ';', '(']) {
        return None;
    }
    line.split_whitespace().next()
}

/// The text of a line without its comment.
fn code(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Whether the file sets `$ORIGIN` before its first record.
pub fn has_origin(text: &str) -> bool {
    for line in text.lines() {
        let l = code(line).trim_start();
        if l.to_ascii_uppercase().starts_with("$ORIGIN") {
            return true;
        }
        if owner_token(code(line)).is_some() {
            return false;
        }
    }
    false
}

/// The origin of a file without `$ORIGIN`: the owner of its SOA record,
/// which must be absolute. The error says exactly what is missing.
pub fn origin_from_soa(text: &str) -> Result<Name, String> {
    for (i, line) in text.lines().enumerate() {
        let l = code(line);
        let mut tokens = l.split_whitespace();
        if !tokens.any(|t| t.eq_ignore_ascii_case("SOA")) {
            continue;
        }
        let Some(owner) = owner_token(l) else {
            return Err(format!(
                "line {}: the SOA record has no owner name and the file no $ORIGIN: \
                 write `$ORIGIN example.com.` first, or start the SOA line with the zone's name",
                i + 1
            ));
        };
        if !owner.ends_with('.') {
            return Err(format!(
                "line {}: the file has no $ORIGIN and the SOA owner `{owner}` is relative: \
                 write `$ORIGIN example.com.` first, or the owner as an absolute name (`example.com.`)",
                i + 1
            ));
        }
        return Name::from_ascii(owner)
            .map_err(|e| format!("line {}: SOA owner `{owner}`: {e}", i + 1));
    }
    Err(
        "the file has neither $ORIGIN nor an SOA record: a zone needs both an origin and an SOA"
            .into(),
    )
}

/// The line (1-based) of a parse error: the line of a `(` that is never
/// closed for an unclosed list, else the shortest prefix of the file that
/// fails with the same error.
pub fn error_line(text: &str, origin: Option<&Name>, error: &str) -> Option<usize> {
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    if error.contains("unclosed") {
        let mut open = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            for c in code(line).chars() {
                match c {
                    '(' => open.push(i + 1),
                    ')' => {
                        open.pop();
                    }
                    _ => {}
                }
            }
        }
        if let Some(l) = open.first() {
            return Some(*l);
        }
    }
    let fails_same = |n: usize| -> bool {
        let prefix: String = lines[..n].concat();
        match Parser::new(&prefix, None, origin.cloned()).parse() {
            Ok(_) => false,
            Err(e) => e.to_string() == error,
        }
    };
    if !fails_same(lines.len()) {
        return None;
    }
    let (mut lo, mut hi) = (0, lines.len());
    while lo + 1 < hi {
        let mid = (lo + hi) / 2;
        if fails_same(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

/// The line (1-based) and text where `name` (absolute) is written as an
/// owner, for errors about a record set.
pub fn owner_line<'t>(text: &'t str, name: &Name) -> Option<(usize, &'t str)> {
    let want = name.to_ascii();
    text.lines().enumerate().find_map(|(i, line)| {
        let t = owner_token(code(line))?;
        let abs = if t.ends_with('.') {
            t.to_string()
        } else {
            format!("{t}.")
        };
        abs.eq_ignore_ascii_case(&want)
            .then_some((i + 1, line.trim_end()))
    })
}

/// The text of line `n` (1-based), trimmed.
pub fn line_text(text: &str, n: usize) -> &str {
    text.lines().nth(n.saturating_sub(1)).unwrap_or("").trim()
}
