//! Rendering for people and for scripts: aligned tables, labelled fields,
//! relative times, and JSON. Text from the broker is cleaned of control
//! characters before it reaches a terminal.

use std::io::{self, Write};
use tollgate::domain::Timestamp;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Aligned tables and labelled fields for people.
    #[default]
    Table,
    /// JSON for scripts: the broker's own objects.
    Json,
}

impl OutputFormat {
    /// Parses `table` or `json` (from the environment or a config file).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "table" => Some(Self::Table),
            "json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Replaces control characters (terminal escapes, newlines, tabs) so text
/// from elsewhere prints as one inert line, and shows invisible characters
/// that could disguise it (bidi overrides, zero-width and other format
/// characters) as `\u{202e}`, so what is printed is what is there.
pub fn clean(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.push('\u{fffd}');
        } else if is_invisible(c) {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// Characters that print as nothing, or reorder or join what is around
/// them: Unicode's bidirectional controls, zero-width and other format
/// characters (general category Cf), fillers and variation selectors.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{0600}'..='\u{0605}'
            | '\u{061C}'
            | '\u{06DD}'
            | '\u{070F}'
            | '\u{08E2}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{110BD}'
            | '\u{110CD}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Cuts `s` to `max` characters, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A table of left-aligned columns separated by two spaces, with a header row.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers.
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; cells are cleaned, missing cells are blank, extra ones dropped.
    pub fn push(&mut self, row: Vec<String>) {
        let mut row: Vec<String> = row.iter().map(|c| clean(c)).collect();
        row.resize(self.headers.len(), String::new());
        self.rows.push(row);
    }

    /// Writes the table; trailing spaces are trimmed from every line.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, (cell, w)) in row.iter().zip(&widths).enumerate() {
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = w.saturating_sub(cell.chars().count());
                line.extend(std::iter::repeat_n(' ', pad));
            }
            writeln!(out, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// Writes `label: value` lines with the values aligned; empty values are skipped.
pub fn write_fields(out: &mut dyn Write, fields: &[(&str, String)]) -> io::Result<()> {
    let fields: Vec<(&str, Vec<String>)> = fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (*k, vec![v.clone()]))
        .collect();
    write_field_lines(out, &fields)
}

/// Like [`write_fields`], for values of several lines: each line is cleaned
/// on its own, and the lines after the first are indented under the value.
pub fn write_field_lines(out: &mut dyn Write, fields: &[(&str, Vec<String>)]) -> io::Result<()> {
    let shown = || {
        fields
            .iter()
            .filter(|(_, v)| v.iter().any(|l| !l.is_empty()))
    };
    let width = shown().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    for (label, lines) in shown() {
        let pad = width - label.chars().count();
        for (i, line) in lines.iter().enumerate() {
            let head = if i == 0 {
                format!("{label}:{}", " ".repeat(pad))
            } else {
                " ".repeat(width + 1)
            };
            writeln!(out, "{head} {}", clean(line).trim_end())?;
        }
    }
    Ok(())
}

/// Writes `text` line by line, each line cleaned (see [`clean`]).
pub fn write_clean_lines(out: &mut dyn Write, text: &str) -> io::Result<()> {
    for line in text.lines() {
        writeln!(out, "{}", clean(line))?;
    }
    Ok(())
}

/// Writes `value` as pretty JSON followed by a newline. Control and
/// invisible characters inside strings are written as `\uXXXX` escapes
/// (the same JSON, read back), so nothing reaches a terminal raw.
pub fn write_json(out: &mut dyn Write, value: &serde_json::Value) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(io::Error::other)?;
    writeln!(out, "{}", escape_json_text(&text))
}

/// Escapes, in serialised JSON, what serde_json leaves raw but a terminal
/// would act on or hide: C1 controls, DEL and invisible characters. They
/// can only occur inside strings, where `\uXXXX` means the same character.
fn escape_json_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // Below DEL, serde_json has escaped every control inside strings:
        // those left are the document's own line breaks.
        if (c.is_control() && c >= '\u{7f}') || is_invisible(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A session policy for people: indented JSON, one element per line (each
/// line is cleaned when written).
pub fn pretty_policy(policy: &serde_json::Value) -> Vec<String> {
    serde_json::to_string_pretty(policy)
        .unwrap_or_else(|_| policy.to_string())
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A span of seconds for people: `45s`, `12m`, `1h 5m`, `2d 3h`.
pub fn human_seconds(seconds: i64) -> String {
    let s = seconds.unsigned_abs();
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{sec}s"),
        (0, 0, _) if sec == 0 || m >= 10 => format!("{m}m"),
        (0, 0, _) => format!("{m}m {sec}s"),
        (0, _, 0) => format!("{h}h"),
        (0, _, _) => format!("{h}h {m}m"),
        (_, 0, _) => format!("{d}d"),
        _ => format!("{d}d {h}h"),
    }
}

/// `at` relative to `now`: `in 1h 5m` or `12m ago`.
pub fn relative(at: Timestamp, now: Timestamp) -> String {
    let delta = at.seconds_since(now);
    if delta == 0 {
        "just now".to_owned()
    } else if delta > 0 {
        format!("in {}", human_seconds(delta))
    } else {
        format!("{} ago", human_seconds(delta))
    }
}

/// `2026-11-22 10:00:00 UTC`.
pub fn utc(at: Timestamp) -> String {
    at.to_rfc3339().replacen('T', " ", 1).replace('Z', " UTC")
}

/// `2026-11-22 10:00:00 UTC (in 1h 5m)`.
pub fn when(at: Timestamp, now: Timestamp) -> String {
    format!("{} ({})", utc(at), relative(at, now))
}

/// Writes a decision explanation from the broker: which policies permitted
/// or forbade, and any errors, as indented lines; anything else as JSON.
pub fn write_explanation(out: &mut dyn Write, explanation: &serde_json::Value) -> io::Result<()> {
    let lists = [
        ("permitted by", "permitted_by"),
        ("forbidden by", "forbidden_by"),
        ("errors", "errors"),
    ];
    // The broker's own text for people says everything; prefer it.
    if let Some(text) = explanation
        .get("explanation")
        .and_then(serde_json::Value::as_str)
    {
        return write_explanation(out, &serde_json::Value::String(text.to_owned()));
    }
    let mut wrote = false;
    if let Some(obj) = explanation.as_object() {
        for (label, key) in lists {
            if let Some(items) = obj.get(key).and_then(serde_json::Value::as_array) {
                let names: Vec<String> = items.iter().map(json_text).collect();
                let shown = if names.is_empty() {
                    "(none)".to_owned()
                } else {
                    names.join(", ")
                };
                writeln!(out, "  {label}: {}", clean(&shown))?;
                wrote = true;
            }
        }
    }
    if let Some(text) = explanation.as_str() {
        for line in text.lines() {
            writeln!(out, "  {}", clean(line))?;
        }
        wrote = true;
    }
    if !wrote {
        let pretty = serde_json::to_string_pretty(explanation).map_err(io::Error::other)?;
        for line in pretty.lines() {
            writeln!(out, "  {line}")?;
        }
    }
    Ok(())
}

/// A JSON value as short text: strings bare, policy objects by their id,
/// anything else compact.
pub fn json_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(o) => ["id", "policy", "name", "message"]
            .iter()
            .find_map(|k| o.get(*k).and_then(serde_json::Value::as_str))
            .map_or_else(|| v.to_string(), str::to_owned),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &Table) -> String {
        let mut buf = Vec::new();
        t.write(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn tables_align_columns_to_the_widest_cell() {
        let mut t = Table::new(&["ID", "STATUS", "REASON"]);
        t.push(vec!["a".into(), "pending".into(), "deploy fix".into()]);
        t.push(vec!["bbbb".into(), "active".into(), String::new()]);
        assert_eq!(
            render(&t),
            "ID    STATUS   REASON\na     pending  deploy fix\nbbbb  active\n"
        );
    }

    #[test]
    fn tables_count_characters_not_bytes() {
        let mut t = Table::new(&["WHO", "X"]);
        t.push(vec!["zoë".into(), "1".into()]);
        t.push(vec!["bob".into(), "2".into()]);
        assert_eq!(render(&t), "WHO  X\nzoë  1\nbob  2\n");
    }

    #[test]
    fn table_cells_lose_control_characters_and_short_rows_are_padded() {
        let mut t = Table::new(&["A", "B"]);
        t.push(vec!["x\u{1b}[2Jy".into()]);
        let out = render(&t);
        assert!(!out.contains('\u{1b}'));
        assert_eq!(out.lines().count(), 2);
        assert!(out.lines().nth(1).unwrap().starts_with("x\u{fffd}[2Jy"));
    }

    #[test]
    fn invisible_and_reordering_characters_are_shown_not_obeyed() {
        assert_eq!(
            clean("ok\u{202e}gpj.exe\u{200b}\u{2066}x\u{feff}"),
            "ok\\u{202e}gpj.exe\\u{200b}\\u{2066}x\\u{feff}"
        );
        assert_eq!(clean("tag\u{e0041}"), "tag\\u{e0041}");
        assert_eq!(clean("zoë, 日本, ok"), "zoë, 日本, ok");
    }

    #[test]
    fn json_output_escapes_what_a_terminal_would_obey_and_still_parses() {
        let v = serde_json::json!({"reason": "a\u{202e}b\u{9b}c\u{7f}\u{e0041}", "n": [1, 2]});
        let mut buf = Vec::new();
        write_json(&mut buf, &v).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert!(
            text.contains(r#""reason": "a\u202eb\u009bc\u007f\udb40\udc41""#),
            "{text}"
        );
        assert!(text.lines().count() > 3, "still pretty: {text}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), v);
    }

    #[test]
    fn fields_align_labels_and_skip_empty_values() {
        let mut buf = Vec::new();
        write_fields(
            &mut buf,
            &[
                ("role", "arn:aws:iam::123456789012:role/X".into()),
                ("ticket", String::new()),
                ("duration", "2h".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "role:     arn:aws:iam::123456789012:role/X\nduration: 2h\n"
        );
    }

    #[test]
    fn spans_read_naturally() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (60, "1m"),
            (65, "1m 5s"),
            (725, "12m"),
            (3600, "1h"),
            (3900, "1h 5m"),
            (86_400, "1d"),
            (97_200, "1d 3h"),
            (-90, "1m 30s"),
        ];
        for (secs, want) in cases {
            assert_eq!(human_seconds(secs), want, "{secs}");
        }
        let now = Timestamp::from_unix(1_000_000);
        assert_eq!(relative(now.plus(3900), now), "in 1h 5m");
        assert_eq!(relative(now.plus(-720), now), "12m ago");
        assert_eq!(
            when(
                Timestamp::from_unix(1_795_000_000),
                Timestamp::from_unix(1_795_000_000)
            ),
            "2026-11-18 11:06:40 UTC (just now)"
        );
    }

    #[test]
    fn truncation_marks_the_cut() {
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(truncate("abc", 4), "abc");
    }

    #[test]
    fn explanations_list_policies_by_id() {
        let mut buf = Vec::new();
        write_explanation(
            &mut buf,
            &serde_json::json!({"permitted_by": [], "forbidden_by": [{"id": "no-prod-without-mfa"}]}),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(buf).unwrap(),
            "  permitted by: (none)\n  forbidden by: no-prod-without-mfa\n"
        );
    }

    #[test]
    fn output_format_parses_case_insensitively() {
        assert_eq!(OutputFormat::parse("JSON"), Some(OutputFormat::Json));
        assert_eq!(OutputFormat::parse(" table "), Some(OutputFormat::Table));
        assert_eq!(OutputFormat::parse("yaml"), None);
    }
}
