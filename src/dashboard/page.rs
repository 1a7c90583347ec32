//! The HTML page: one self-contained document (inline CSS and SVG, one small inline
//! script, no URL anywhere), so it opens from a file or an e-mail and makes no request.
//! The script only records, on each chart mark, the size the browser rendered it at
//! (`data-rendered-height`, `data-rendered-y`): a headless browser's DOM then shows
//! what was drawn.

use std::fmt::Write;

use super::data::{Data, STAGES};
use super::svg;
use crate::status::Status;

/// Text made safe for HTML content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:960px}\
h1{font-size:22px}h2{font-size:17px;margin-top:32px}table{border-collapse:collapse}\
td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}td.n{text-align:right}\
.tick{font-size:11px;fill:#666}.legend span{margin-right:14px;font-size:12px}\
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px}.empty{color:#888}\
.bad{color:#b00}";

const SCRIPT: &str = "for (const m of document.querySelectorAll('rect.bar, circle.point')) {\
const r = m.getBoundingClientRect();\
m.setAttribute('data-rendered-height', r.height.toFixed(3));\
m.setAttribute('data-rendered-y', r.y.toFixed(3));}\
document.body.setAttribute('data-rendered', 'yes');";

/// The whole page.
pub fn render(config: &str, status: &Status, data: &Data, generated: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>medallion report</title>\
         <style>{STYLE}</style></head><body><h1>medallion report</h1>\
         <p>Lakehouse {} (configuration {}), generated {} UTC.</p>",
        escape(&status.lakehouse),
        escape(config),
        escape(generated)
    );
    latest_run(&mut h, status);
    section(&mut h, "Rows per zone", "rows at the end of each run");
    if data.zone_rows.labels.is_empty() {
        h.push_str("<p class=\"empty\">No run recorded yet.</p>");
    } else {
        h.push_str(&svg::lines("zone-rows", &data.zone_rows, ""));
    }
    section(
        &mut h,
        "Rejections by rule",
        "rows rejected per run, by failed rule",
    );
    if data.rejections.is_empty() {
        h.push_str("<p class=\"empty\">No run recorded yet.</p>");
    } else {
        h.push_str(&svg::bars("rejections", &data.rules, &data.rejections, ""));
    }
    for g in &data.gold {
        match &g.chart {
            Ok((day, measure, bars)) if !bars.is_empty() => {
                let what = format!("SUM({measure}) per {day}");
                section(&mut h, &format!("gold.{}: daily totals", g.model), &what);
                let id = format!("gold-{}", g.model);
                h.push_str(&svg::bars(&id, std::slice::from_ref(measure), bars, ""));
            }
            Ok(_) => {}
            Err(why) => {
                section(&mut h, &format!("gold.{}", g.model), why);
            }
        }
    }
    section(&mut h, "Stage durations", "seconds per run and stage");
    if data.stages.is_empty() {
        h.push_str("<p class=\"empty\">No run recorded yet.</p>");
    } else {
        let names: Vec<String> = STAGES.iter().map(|s| s.to_string()).collect();
        h.push_str(&svg::bars("stages", &names, &data.stages, " s"));
    }
    tables(&mut h, status);
    let _ = write!(h, "<script>{SCRIPT}</script></body></html>");
    h
}

fn section(h: &mut String, title: &str, note: &str) {
    let _ = write!(
        h,
        "<h2>{}</h2><p class=\"empty\">{}</p>",
        escape(title),
        escape(note)
    );
}

fn latest_run(h: &mut String, s: &Status) {
    h.push_str("<h2>Latest run</h2>");
    let Some(r) = &s.last_run else {
        h.push_str("<p class=\"empty\" id=\"latest-run\">No run recorded yet.</p>");
        return;
    };
    h.push_str("<table id=\"latest-run\">");
    for (label, value) in r.facts() {
        let class = match label {
            "outcome" if value != "ok" => "bad",
            "started (UTC)" | "outcome" => "",
            _ => "n",
        };
        let _ = write!(
            h,
            "<tr><th>{label}</th><td class=\"{class}\">{}</td></tr>",
            escape(&value)
        );
    }
    h.push_str("</table>");
    if let Some(e) = &r.error {
        let _ = write!(h, "<p class=\"bad\">{}</p>", escape(e));
    }
}

/// Failed files, then every table.
fn tables(h: &mut String, s: &Status) {
    h.push_str("<h2>Failed files</h2>");
    if s.files.failed.is_empty() {
        h.push_str("<p class=\"empty\" id=\"failed-files\">None.</p>");
    } else {
        h.push_str(
            "<table id=\"failed-files\"><tr><th>file</th><th>at (UTC)</th><th>reason</th></tr>",
        );
        for f in &s.files.failed {
            let at = f.at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string());
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&f.file),
                at.unwrap_or_default(),
                escape(&f.reason)
            );
        }
        h.push_str("</table>");
    }
    let _ = write!(
        h,
        "<h2>Tables</h2><p>{} file(s) loaded, {} pending, {} duplicate(s).</p>\
         <table id=\"tables\"><tr><th>table</th><th>version</th><th>rows</th><th>files</th><th>size</th></tr>",
        s.files.loaded,
        s.files.pending.len(),
        s.files.duplicates.len()
    );
    for t in &s.tables {
        let v = t.version.map_or("-".to_string(), |v| v.to_string());
        let _ = write!(
            h,
            "<tr><td>{}</td><td class=\"n\">{v}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td></tr>",
            escape(&t.name),
            t.rows,
            t.files,
            bytesize::ByteSize(t.bytes).display().iec_short()
        );
    }
    h.push_str("</table>");
}

#[cfg(test)]
mod tests {
    #[test]
    fn escapes_markup() {
        assert_eq!(
            super::escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
