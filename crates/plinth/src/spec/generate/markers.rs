//! The generated blocks of a document: `<!-- plinth:generated begin NAME -->` and
//! `<!-- plinth:generated end NAME -->` on lines of their own, outside code fences. Between
//! them is the code's; around them, the people's.

use std::fmt::Write as _;

const PREFIX: &str = "<!-- plinth:generated ";
const SUFFIX: &str = " -->";

/// The line that opens block `name`.
pub(crate) fn begin(name: &str) -> String {
    format!("{PREFIX}begin {name}{SUFFIX}")
}

/// The line that closes block `name`.
pub(crate) fn end(name: &str) -> String {
    format!("{PREFIX}end {name}{SUFFIX}")
}

/// Block `name` with its markers, `body` between them after a blank line.
pub(crate) fn wrap(name: &str, body: &str) -> String {
    format!("{}\n{}{}\n", begin(name), body_of(body), end(name))
}

/// One generated block of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Block {
    pub(crate) name: String,
    /// The line of its `begin` marker (1-based).
    pub(crate) line: usize,
    /// Its body: the bytes between the end of the `begin` line and the start of the `end` line.
    pub(crate) body: std::ops::Range<usize>,
}

/// A marker line: `Ok(Some((is_begin, name)))`, `Ok(None)` for any other line.
fn marker(line: &str, n: usize) -> Result<Option<(bool, String)>, String> {
    let trimmed = line.trim();
    let Some(rest) = trimmed.strip_prefix(PREFIX.trim_end()) else { return Ok(None) };
    let bad = || format!("line {n}: malformed marker `{trimmed}`; write `{}` or `{}`", begin("NAME"), end("NAME"));
    let rest = rest.strip_suffix(SUFFIX.trim_start()).ok_or_else(bad)?.trim();
    let (kind, name) = rest.split_once(' ').ok_or_else(bad)?;
    let name = name.trim();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(bad());
    }
    match kind {
        "begin" => Ok(Some((true, name.to_string()))),
        "end" => Ok(Some((false, name.to_string()))),
        _ => Err(bad()),
    }
}

/// The generated blocks of `text`, in order.
///
/// # Errors
/// A marker that is malformed, unbalanced, nested, or names a block twice (with its line).
pub(crate) fn find(text: &str) -> Result<Vec<Block>, String> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut open: Option<(String, usize, usize)> = None;
    let mut in_fence = false;
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let n = i + 1;
        let start = offset;
        offset += line.len();
        let trimmed = line.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        match (marker(line, n)?, &open) {
            (None, _) => {}
            (Some((true, name)), None) => {
                if let Some(b) = blocks.iter().find(|b| b.name == name) {
                    return Err(format!("line {n}: block `{name}` appears twice (first at line {})", b.line));
                }
                open = Some((name, n, offset));
            }
            (Some((true, name)), Some((outer, at, _))) => {
                return Err(format!(
                    "line {n}: `begin {name}` inside block `{outer}` opened at line {at}; close `{outer}` first"
                ));
            }
            (Some((false, name)), None) => return Err(format!("line {n}: `end {name}` without a `begin {name}`")),
            (Some((false, name)), Some((outer, at, body_start))) => {
                if name != *outer {
                    return Err(format!("line {n}: `end {name}` closes block `{outer}` opened at line {at}"));
                }
                blocks.push(Block { name, line: *at, body: *body_start..start });
                open = None;
            }
        }
    }
    match open {
        Some((name, at, _)) => Err(format!("line {at}: block `{name}` is never closed (no `{}`)", end(&name))),
        None => Ok(blocks),
    }
}

/// `text` with the body of each block replaced by what `render` gives for its name.
pub(crate) fn replace(text: &str, blocks: &[Block], render: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for b in blocks {
        out.push_str(&text[at..b.body.start]);
        out.push_str(&body_of(&render(&b.name)));
        at = b.body.end;
    }
    out.push_str(&text[at..]);
    out
}

/// The body `replace` writes for `content`.
pub(crate) fn body_of(content: &str) -> String {
    format!("\n{content}\n")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep,
    Remove,
    Add,
}

/// A line diff of `old` and `new` in unified style: `-` lines only in `old`, `+` lines only in
/// `new`, two lines of context, `@@ -a,b +c,d @@` before each hunk (lines counted from
/// `first_line`, the document line of `old`'s first line). Empty when they are equal.
pub(crate) fn diff(old: &str, new: &str, first_line: usize) -> String {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    // Longest common subsequence table, filled from the end.
    let mut lcs = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let mut ops: Vec<(Op, usize, usize)> = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            ops.push((Op::Keep, i, j));
            i += 1;
            j += 1;
        } else if i < a.len() && (j == b.len() || lcs[i + 1][j] >= lcs[i][j + 1]) {
            ops.push((Op::Remove, i, j));
            i += 1;
        } else {
            ops.push((Op::Add, i, j));
            j += 1;
        }
    }
    const CONTEXT: usize = 2;
    let changed: Vec<usize> = ops.iter().enumerate().filter(|(_, o)| o.0 != Op::Keep).map(|(k, _)| k).collect();
    let mut out = String::new();
    let mut k = 0;
    while k < changed.len() {
        let start = changed[k].saturating_sub(CONTEXT);
        let mut last = changed[k];
        while k + 1 < changed.len() && changed[k + 1] <= last + 2 * CONTEXT + 1 {
            k += 1;
            last = changed[k];
        }
        let stop = (last + CONTEXT + 1).min(ops.len());
        let hunk = &ops[start..stop];
        let old_count = hunk.iter().filter(|o| o.0 != Op::Add).count();
        let new_count = hunk.iter().filter(|o| o.0 != Op::Remove).count();
        let _ = writeln!(out, "@@ -{},{old_count} +{},{new_count} @@", first_line + hunk[0].1, first_line + hunk[0].2);
        for (op, x, y) in hunk {
            let _ = match op {
                Op::Keep => writeln!(out, " {}", a[*x]),
                Op::Remove => writeln!(out, "-{}", a[*x]),
                Op::Add => writeln!(out, "+{}", b[*y]),
            };
        }
        k += 1;
    }
    out
}
