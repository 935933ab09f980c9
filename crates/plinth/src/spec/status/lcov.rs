//! Line coverage from an lcov tracefile: the `LF` (lines found) and `LH` (lines hit) of every
//! record, summed.

/// Lines instrumented and lines hit, over every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Coverage {
    pub(crate) found: u64,
    pub(crate) hit: u64,
}

impl Coverage {
    /// Lines hit, in percent of lines found (0 when nothing is instrumented).
    pub(crate) fn percent(self) -> f64 {
        if self.found == 0 {
            return 0.0;
        }
        #[allow(clippy::cast_precision_loss)]
        let share = self.hit as f64 * 100.0 / self.found as f64;
        share
    }

    /// How many more lines must be hit to reach `target` percent.
    pub(crate) fn needed_for(self, target: u64) -> u64 {
        (self.found * target).div_ceil(100).saturating_sub(self.hit)
    }
}

fn number(line: usize, key: &str, value: &str) -> Result<u64, String> {
    value.trim().parse().map_err(|_| format!("line {line}: `{key}:{value}` is not a count of lines"))
}

/// Parses an lcov tracefile.
///
/// # Errors
/// A count that is not a number, a record whose `LH` exceeds its `LF` or lacks one, or a file
/// with no `LF` at all (not an lcov tracefile).
pub(crate) fn parse(text: &str) -> Result<Coverage, String> {
    let mut total = Coverage { found: 0, hit: 0 };
    let mut records = 0;
    let (mut found, mut hit): (Option<(usize, u64)>, Option<u64>) = (None, None);
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if let Some(v) = line.strip_prefix("LF:") {
            found = Some((n, number(n, "LF", v)?));
        } else if let Some(v) = line.strip_prefix("LH:") {
            hit = Some(number(n, "LH", v)?);
        } else if line == "end_of_record" {
            match (found.take(), hit.take()) {
                (Some((_, f)), Some(h)) if h > f => {
                    return Err(format!("line {n}: the record ending here hits {h} lines of {f} (LH > LF)"));
                }
                (Some((_, f)), Some(h)) => {
                    total.found += f;
                    total.hit += h;
                    records += 1;
                }
                (Some((at, _)), None) => return Err(format!("line {at}: an `LF` without an `LH` in its record")),
                (None, Some(_)) => return Err(format!("line {n}: a record with an `LH` but no `LF`")),
                (None, None) => {}
            }
        }
    }
    if let Some((at, _)) = found {
        return Err(format!("line {at}: the last record has no `end_of_record`"));
    }
    if records == 0 {
        return Err(
            "no `LF:`/`LH:` line counts: not an lcov tracefile (make one with `cargo llvm-cov --lcov` or `coverage lcov`)".into(),
        );
    }
    Ok(total)
}
