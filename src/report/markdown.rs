//! The Markdown report (`--format md -o report.md`): the same story as the
//! HTML page in headings and tables, ready for a pull request or a review;
//! each chart is an SVG file beside it (`report-ledger.svg`), linked
//! relatively. Strings from captures are escaped so they stay text.

use super::doc::{Block, Doc, Table};
use std::fmt::Write;

/// Escapes text for a Markdown paragraph or table cell: no HTML, no
/// emphasis, links or code, no table breaks, no line breaks.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '|' => o.push_str("&#124;"),
            '\\' | '`' | '*' | '_' | '[' | ']' | '~' => {
                o.push('\\');
                o.push(c);
            }
            c if c.is_control() => o.push(' '),
            c => o.push(c),
        }
    }
    o
}

pub fn table(o: &mut String, t: &Table) {
    let _ = writeln!(o, "\n*{}*\n", escape(&t.caption));
    if t.head.is_empty() {
        return;
    }
    let _ = writeln!(o, "| {} |", t.head.iter().map(|h| escape(h)).collect::<Vec<_>>().join(" | "));
    let _ = writeln!(o, "|{}", t.head.iter().map(|_| "---|").collect::<String>());
    for row in &t.rows {
        let _ = writeln!(o, "| {} |", row.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" | "));
    }
}

/// A chart file's name: the report's stem and the chart's name.
pub fn chart_file(stem: &str, name: &str) -> String {
    let name: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    format!("{stem}-{name}.svg")
}

/// The Markdown and the chart files it links to, as (file name, SVG).
pub fn render_doc(doc: &Doc, stem: &str) -> (String, Vec<(String, String)>) {
    let mut o = String::new();
    let mut files = Vec::new();
    let _ = writeln!(o, "# {}", escape(&doc.title));
    body(&mut o, &mut files, doc, stem, 2);
    (o, files)
}

pub fn body(o: &mut String, files: &mut Vec<(String, String)>, doc: &Doc, stem: &str, level: usize) {
    let hashes = "#".repeat(level);
    for s in &doc.sections {
        let _ = writeln!(o, "\n{hashes} {}", escape(&s.heading));
        for b in &s.blocks {
            match b {
                Block::Para(p) => {
                    let _ = writeln!(o, "\n{}", escape(p));
                }
                Block::Table(t) => table(o, t),
                Block::Figure { name, title, svg, table: t } => {
                    let file = chart_file(stem, name);
                    // The file name is ours (escaped all the same: the stem is the user's).
                    let _ =
                        writeln!(o, "\n![{}]({})", escape(title), file.replace(' ', "%20").replace(['(', ')'], "-"));
                    files.push((file, svg.clone()));
                    table(o, t);
                }
            }
        }
    }
}

pub fn render(r: &super::Report, stem: &str) -> (String, Vec<(String, String)>) {
    render_doc(&super::doc::build(r, "", Default::default()), stem)
}
