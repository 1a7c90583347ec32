//! Writes the inferred configuration as commented YAML, in the layout of the bundled
//! `config.yaml`: lakehouse, source (dialect, columns), silver key, and a commented gold
//! model skeleton built from the columns (a group column, a day, a measure).

use std::fmt::Write;

use super::{Column, Inference};

/// Tokens read as missing in the generated configuration.
pub const NULL_VALUES: [&str; 5] = ["", "NA", "N/A", "NULL", "null"];

/// A YAML double-quoted scalar (JSON's escaping is valid YAML).
fn quoted(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// The whole `config.yaml`.
pub fn render(inf: &Inference, from: &str) -> String {
    let mut y = String::new();
    let mut traits = vec![format!(
        "delimiter {}",
        quoted(&(inf.delimiter as char).to_string())
    )];
    traits.push(if inf.header { "a header" } else { "no header" }.into());
    if inf.bom {
        traits.push("a UTF-8 byte-order mark (skipped when read)".into());
    }
    if inf.gzip {
        traits.push("gzip-compressed".into());
    }
    let _ = writeln!(
        y,
        "# medallion configuration inferred by `medallion init` from {from}\n\
         # ({} data rows read) with {}.\n\
         # Review the types, `required` and the key, then run `medallion validate`.\n\
         # Every key is documented in README.md (\"Configuration reference\").\n",
        inf.rows,
        traits.join(", ")
    );
    if inf.skipped > 0 {
        let _ = writeln!(
            y,
            "# {} malformed record(s) of the sample were left out of the inference.\n",
            inf.skipped
        );
    }
    let _ = writeln!(y, "lakehouse: lakehouse\n\nsource:\n  name: {}", inf.name);
    let _ = writeln!(y, "  raw_dir: raw\n  pattern: {}", quoted(&inf.pattern));
    let _ = writeln!(y, "  timezone: UTC\n  csv:");
    let _ = writeln!(
        y,
        "    delimiter: {}\n    quote: {}\n    header: {}\n    trim: true",
        quoted(&(inf.delimiter as char).to_string()),
        quoted(&(inf.quote as char).to_string()),
        inf.header
    );
    let nulls: Vec<String> = NULL_VALUES.iter().map(|s| quoted(s)).collect();
    let _ = writeln!(y, "    null_values: [{}]\n  columns:", nulls.join(", "));
    for c in &inf.columns {
        render_column(&mut y, c);
    }
    let _ = writeln!(y, "\nsilver:\n  {}", inf.key_note);
    let key: Vec<&str> = inf
        .key
        .iter()
        .map(|&i| inf.columns[i].name.as_str())
        .collect();
    let _ = writeln!(y, "  key: [{}]\n", key.join(", "));
    y.push_str(&gold_skeleton(inf));
    y
}

fn render_column(y: &mut String, c: &Column) {
    let _ = writeln!(y, "    - name: {}", c.name);
    if let Some(header) = &c.header {
        let _ = writeln!(y, "      source: {}", quoted(header));
    }
    let _ = writeln!(y, "      type: {}", c.inferred.ty);
    if let Some(format) = &c.inferred.format {
        let _ = writeln!(y, "      format: {}", quoted(format));
    }
    if let Some(note) = &c.inferred.note {
        let _ = writeln!(y, "      # {note}");
    }
    if c.required {
        if c.missing > 0 {
            let _ = writeln!(
                y,
                "      # a key column: the {} sampled row(s) without a value are rejected (rule `required`)",
                c.missing
            );
        }
        let _ = writeln!(y, "      required: true");
    }
}

/// A commented model: row count and a sum per group column and day, from what exists.
fn gold_skeleton(inf: &Inference) -> String {
    let ty = |c: &Column| c.inferred.ty.clone();
    let is = |c: &&Column, types: &[&str]| types.iter().any(|t| ty(c).starts_with(t));
    let in_key = |c: &Column| inf.key.iter().any(|&i| inf.columns[i].name == c.name);
    let group = inf
        .columns
        .iter()
        .filter(|c| is(c, &["string", "int", "bigint"]))
        .min_by_key(|c| !in_key(c));
    let time = inf.columns.iter().find(|c| is(c, &["timestamp", "date"]));
    let measure = inf
        .columns
        .iter()
        .filter(|c| group.is_none_or(|g| g.name != c.name))
        .find(|c| is(c, &["decimal", "double", "int", "bigint"]) && !in_key(c));
    let mut select = Vec::new();
    let mut by = Vec::new();
    let mut keys = Vec::new();
    if let Some(g) = group {
        select.push(g.name.clone());
        by.push(g.name.clone());
        keys.push(g.name.clone());
    }
    if let Some(t) = time {
        let day = if ty(t) == "date" {
            t.name.clone()
        } else {
            format!("{}_date", t.name)
        };
        select.push(format!("CAST({} AS DATE) AS {day}", t.name));
        by.push(format!("CAST({} AS DATE)", t.name));
        keys.push(day);
    }
    if keys.is_empty() {
        return "# gold: no string, integer or date column to group by; see README.md for models.\n"
            .into();
    }
    select.push("COUNT(*) AS row_count".into());
    if let Some(m) = measure {
        select.push(format!("SUM({0}) AS total_{0}", m.name));
    }
    let mut y = String::from(
        "# A gold model to start from: uncomment it, adapt it, then run `medallion validate`.\n",
    );
    let _ = writeln!(y, "# gold:\n#   - name: {}_summary", inf.name);
    let _ = writeln!(y, "#     keys: [{}]\n#     sql: |", keys.join(", "));
    let _ = writeln!(y, "#       SELECT {}", select.join(",\n#              "));
    let _ = writeln!(y, "#       FROM silver\n#       GROUP BY {}", by.join(", "));
    y
}
