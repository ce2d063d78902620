//! The HTML report (`--format html`): one self-contained page, charts as
//! inline SVG beside the tables of their figures. Nothing is fetched and no
//! script runs (the page's Content-Security-Policy forbids both); every
//! string from a capture is escaped here.

use super::doc::{Block, Doc, Table};
use std::fmt::Write;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1400px;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;margin-top:1.8em}\
.pair{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start;margin:1em 0}\
figure{margin:0;flex:0 0 auto}figure svg{max-width:100%;height:auto}\
table{border-collapse:collapse;font-size:.85em;margin:.5em 0}caption{text-align:left;font-weight:600;padding:.3em 0}\
td,th{border:1px solid #ccc;padding:.2em .5em;vertical-align:top}td.n{text-align:right;font-variant-numeric:tabular-nums}\
th{background:#f4f4f4}.wrap{overflow-x:auto;max-width:100%}details{margin:.5em 0}\
.side{display:grid;grid-template-columns:1fr 1fr;gap:1em}.side>div{min-width:0}.verdict{font-size:1.2em;font-weight:600}";

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c if c.is_control() => o.push('?'),
            c => o.push(c),
        }
    }
    o
}

fn numeric(s: &str) -> bool {
    let s = s.trim_end_matches(['%', 'x']);
    !s.is_empty() && s.parse::<f64>().is_ok()
}

pub fn table(o: &mut String, t: &Table) {
    let inner = {
        let mut s = String::new();
        let _ = write!(s, "<div class=\"wrap\"><table><caption>{}</caption><thead><tr>", escape(&t.caption));
        for h in &t.head {
            let _ = write!(s, "<th scope=\"col\">{}</th>", escape(h));
        }
        s.push_str("</tr></thead><tbody>");
        for row in &t.rows {
            s.push_str("<tr>");
            for (k, cell) in row.iter().enumerate() {
                if k == 0 {
                    let _ = write!(s, "<th scope=\"row\">{}</th>", escape(cell));
                } else if numeric(cell) {
                    let _ = write!(s, "<td class=\"n\">{}</td>", escape(cell));
                } else {
                    let _ = write!(s, "<td>{}</td>", escape(cell));
                }
            }
            s.push_str("</tr>");
        }
        s.push_str("</tbody></table></div>");
        s
    };
    if t.folded {
        let _ =
            write!(o, "<details><summary>{} ({} rows)</summary>{inner}</details>", escape(&t.caption), t.rows.len());
    } else {
        o.push_str(&inner);
    }
}

pub fn block(o: &mut String, b: &Block) {
    match b {
        Block::Para(p) => {
            let _ = write!(o, "<p>{}</p>", escape(p));
        }
        Block::Table(t) => table(o, t),
        Block::Figure { name, title, svg, table: t } => {
            let _ = write!(
                o,
                "<div class=\"pair\"><figure class=\"chart\" id=\"chart-{}\" role=\"img\" aria-label=\"{}\">",
                escape(name),
                escape(title)
            );
            // The SVG's own XML declaration is not wanted inside HTML.
            let svg = svg.trim_start();
            let svg = match svg.strip_prefix("<?xml") {
                Some(rest) => rest.split_once("?>").map_or(rest, |(_, r)| r),
                None => svg,
            };
            o.push_str(svg);
            o.push_str("</figure>");
            table(o, t);
            o.push_str("</div>");
        }
    }
}

/// The page's head and opening, with `title`.
pub fn open(o: &mut String, title: &str) {
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"generator\" content=\"wiretax {}\"><title>{}</title><style>{STYLE}</style></head><body>\n",
        env!("CARGO_PKG_VERSION"),
        escape(title)
    );
}

pub fn close(o: &mut String) {
    o.push_str("\n</body></html>\n");
}

pub fn render_doc(doc: &Doc) -> String {
    let mut o = String::new();
    open(&mut o, &doc.title);
    let _ = write!(o, "<h1>{}</h1>", escape(&doc.title));
    body(&mut o, doc, 2);
    close(&mut o);
    o
}

/// The sections of `doc`, headings at `level`.
pub fn body(o: &mut String, doc: &Doc, level: u8) {
    for s in &doc.sections {
        let _ = write!(o, "\n<section id=\"{}\"><h{level}>{}</h{level}>", escape(&s.id), escape(&s.heading));
        for b in &s.blocks {
            block(o, b);
        }
        o.push_str("</section>");
    }
}

pub fn render(r: &super::Report) -> String {
    render_doc(&super::doc::build(r, "", Default::default()))
}
