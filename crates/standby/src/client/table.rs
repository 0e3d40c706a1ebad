//! Aligned text tables and the small formatting rules the client's output shares: times shown
//! in UTC to the minute, statuses coloured by what they mean (only on a terminal: `console`
//! turns styling off when the stream is not one, or when `NO_COLOR` is set).

use console::{Style, measure_text_width, style};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// Columns padded to their widest cell (measured without colour codes), two spaces apart;
    /// the last column is not padded, so lines carry no trailing blanks.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                if let Some(width) = widths.get_mut(i) {
                    *width = (*width).max(measure_text_width(cell));
                }
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self
            .headers
            .iter()
            .map(|h| style(h).bold().to_string())
            .collect();
        push_line(&mut out, &header, &widths);
        for row in &self.rows {
            push_line(&mut out, row, &widths);
        }
        out
    }
}

fn push_line(out: &mut String, cells: &[String], widths: &[usize]) {
    let last = cells.len().saturating_sub(1);
    for (i, cell) in cells.iter().enumerate() {
        out.push_str(cell);
        if i < last {
            let pad = widths[i].saturating_sub(measure_text_width(cell)) + 2;
            out.push_str(&" ".repeat(pad));
        }
    }
    out.push('\n');
}

/// An API date-time as `2026-11-27 16:00Z`; `-` for null, the text itself if it does not parse.
pub fn when(value: &Value) -> String {
    let Some(text) = value.as_str() else {
        return "-".into();
    };
    match OffsetDateTime::parse(text, &Rfc3339) {
        Ok(at) => at
            .to_offset(time::UtcOffset::UTC)
            .format(format_description!("[year]-[month]-[day] [hour]:[minute]Z"))
            .unwrap_or_else(|_| text.to_owned()),
        Err(_) => text.to_owned(),
    }
}

/// Seconds as `42s`, `3m05s` or `1h02m`.
pub fn duration(seconds: f64) -> String {
    let total = seconds.max(0.0).round() as u64;
    match total {
        0..60 => format!("{total}s"),
        60..3600 => format!("{}m{:02}s", total / 60, total % 60),
        _ => format!("{}h{:02}m", total / 3600, (total % 3600) / 60),
    }
}

/// A plan, session or VM status, coloured green, yellow or red by what it means.
pub fn status(text: &str) -> String {
    status_style(text).apply_to(text).to_string()
}

pub fn status_style(text: &str) -> Style {
    match text {
        "Success" | "Completed" | "Ready" | "succeed" => Style::new().green(),
        "Failed" | "UndoFailed" | "failed" => Style::new().red().bold(),
        "Warning" | "InProgress" | "InUndoProgress" | "Running" | "running" | "canceled" => {
            Style::new().yellow()
        }
        _ => Style::new(),
    }
}

/// A JSON string field, or `-`.
pub fn text(value: &Value) -> String {
    match value {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => "-".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_and_lines_have_no_trailing_blanks() {
        let mut table = Table::new(&["NAME", "STATUS"]);
        table.row(vec!["a".into(), "Ready".into()]);
        table.row(vec!["longer name".into(), "Failed".into()]);
        let text = console::strip_ansi_codes(&table.render()).to_string();
        assert_eq!(
            text,
            "NAME         STATUS\na            Ready\nlonger name  Failed\n"
        );
    }

    #[test]
    fn times_and_durations() {
        assert_eq!(
            when(&json!("2026-11-27T16:00:00.0000000+01:00")),
            "2026-11-27 15:00Z"
        );
        assert_eq!(when(&Value::Null), "-");
        assert_eq!(when(&json!("soon")), "soon");
        assert_eq!(duration(4.4), "4s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(3720.0), "1h02m");
    }
}
