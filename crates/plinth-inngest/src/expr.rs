//! Inngest's expressions in Plinth's variables. Inngest writes the conditions of `cancel` and of
//! `waitForEvent` over `event` (the event that started the run) and `async` (the event that
//! arrives); Plinth writes them over `event` (the event that arrives) and `run` (the run, whose
//! `input` is the starting event). So `async.` becomes `event.` and `event.` becomes
//! `run.input.`. Only whole identifiers at the root of a path are renamed, never a field
//! (`x.event`) nor text inside a string literal.

/// `source` with `async` read as the arriving event and `event` as the run's starting event.
#[must_use]
pub fn arriving_vs_run(source: &str) -> String {
    rename(source, &|ident| match ident {
        "async" => Some("event"),
        "event" => Some("run.input"),
        _ => None,
    })
}

/// Renames each root identifier for which `to` answers a replacement.
fn rename(source: &str, to: &dyn Fn(&str) -> Option<&'static str>) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len() + 16);
    let mut i = 0;
    // The last character that is not blank: a `.` before an identifier makes it a field.
    let mut last = ' ';
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            let end = string_end(&chars, i);
            out.extend(&chars[i..end]);
            i = end;
            last = c;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let ident: String = chars[start..i].iter().collect();
            // Why: `r'..'` and `b'..'` are string prefixes, not identifiers.
            let prefix = i < chars.len() && (chars[i] == '"' || chars[i] == '\'') && ident.len() <= 2;
            match to(&ident) {
                Some(new) if last != '.' && !prefix => out.push_str(new),
                _ => out.push_str(&ident),
            }
            last = 'a';
            continue;
        }
        out.push(c);
        if !c.is_whitespace() {
            last = c;
        }
        i += 1;
    }
    out
}

/// The index just past the string literal that opens at `start` (single or triple quoted, with
/// backslash escapes); the end of the text when it is not closed.
fn string_end(chars: &[char], start: usize) -> usize {
    let q = chars[start];
    let triple = chars.len() >= start + 3 && chars[start + 1] == q && chars[start + 2] == q;
    let mut i = start + if triple { 3 } else { 1 };
    while i < chars.len() {
        match chars[i] {
            '\\' => i += 2,
            c if c == q && !triple => return i + 1,
            c if c == q && chars.len() >= i + 3 && chars[i + 1] == q && chars[i + 2] == q => return i + 3,
            _ => i += 1,
        }
    }
    chars.len()
}

#[cfg(test)]
mod tests {
    use super::arriving_vs_run;

    #[test]
    fn the_two_events_trade_names() {
        assert_eq!(arriving_vs_run("async.data.order == event.data.order"), "event.data.order == run.input.data.order");
        assert_eq!(arriving_vs_run("event.data.id==async.data.id"), "run.input.data.id==event.data.id");
        assert_eq!(
            arriving_vs_run("size(async.data.items) > 0 && has(event.data.x)"),
            "size(event.data.items) > 0 && has(run.input.data.x)"
        );
    }

    #[test]
    fn fields_strings_and_other_names_are_left_alone() {
        assert_eq!(arriving_vs_run("async.data.event == 'event.data'"), "event.data.event == 'event.data'");
        assert_eq!(arriving_vs_run(r#"async.data.s == "it's \"async\"""#), r#"event.data.s == "it's \"async\"""#);
        assert_eq!(arriving_vs_run("async.data. event"), "event.data. event", "a field after a blank");
        assert_eq!(arriving_vs_run("events.size() > 0 && asyncs == 1"), "events.size() > 0 && asyncs == 1");
        assert_eq!(arriving_vs_run("r'event' == async.name"), "r'event' == event.name");
        assert_eq!(arriving_vs_run("'''a 'event' b''' == event.x"), "'''a 'event' b''' == run.input.x");
    }

    #[test]
    fn broken_text_is_passed_on_for_the_compiler_to_refuse() {
        assert_eq!(arriving_vs_run("async.data.x == 'open"), "event.data.x == 'open");
        assert_eq!(arriving_vs_run(""), "");
        assert_eq!(arriving_vs_run("'\\"), "'\\");
    }
}
