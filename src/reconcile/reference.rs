//! The reference file: read as text columns named by its header, checked against the
//! model (every key named, nothing unknown, something to compare), typed as the model's
//! columns, and checked to name each key once.

use std::path::Path;
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use deltalake::arrow::compute::{CastOptions, cast_with_options};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use deltalake::datafusion::prelude::SessionContext;

use super::{ident, raw};
use crate::config::GoldModel;
use crate::error::{MedallionError, Result};

/// Characters of a value shown in an error (rows can hold personal data).
const SHOWN: usize = 64;

/// The reference as read: one text column per header name (values trimmed, empty =
/// null) and the file line of each row.
pub struct Text {
    pub batch: RecordBatch,
    pub lines: Vec<u64>,
}

impl Text {
    pub fn num_rows(&self) -> usize {
        self.batch.num_rows()
    }
}

/// Read the whole reference (gzip or plain; delimiter and quote sniffed).
pub fn read(path: &Path) -> Result<Text> {
    let sniffed = crate::init::sniff::sniff(path)?;
    let bad = |message: String| MedallionError::BadFile {
        file: path.display().to_string(),
        message,
    };
    let dialect = medallion_csv::Dialect {
        delimiter: sniffed.delimiter,
        quote: sniffed.quote,
        ..Default::default()
    };
    let mut records = medallion_csv::RecordReader::new(sniffed.text, dialect);
    let mut next = || {
        records
            .next_record()
            .map_err(|source| MedallionError::ReadFile {
                path: path.to_path_buf(),
                source,
            })
    };
    let header = next()?.ok_or_else(|| bad("no header line".into()))?;
    let names: Vec<String> = header
        .fields
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
        .collect();
    if let Some(twice) = names
        .iter()
        .enumerate()
        .find(|(i, n)| names[..*i].contains(n))
    {
        return Err(bad(format!("the header names column {} twice", twice.1)));
    }
    let mut values: Vec<Vec<Option<String>>> = vec![Vec::new(); names.len()];
    let mut lines = Vec::new();
    while let Some(r) = next()? {
        if let Some(problem) = r.problems.first() {
            return Err(bad(format!("line {}: {}", r.line, problem.message())));
        }
        if r.fields.len() != names.len() {
            return Err(bad(format!(
                "line {}: {} fields, the header has {}",
                r.line,
                r.fields.len(),
                names.len()
            )));
        }
        for (column, field) in values.iter_mut().zip(r.fields) {
            let v = field.trim();
            column.push((!v.is_empty()).then(|| v.to_string()));
        }
        lines.push(r.line);
    }
    let fields: Vec<Field> = names
        .iter()
        .map(|n| Field::new(n, DataType::Utf8, true))
        .collect();
    let arrays: Vec<ArrayRef> = values
        .into_iter()
        .map(|v| Arc::new(StringArray::from(v)) as ArrayRef)
        .collect();
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(MedallionError::arrow("read the reference"))?;
    Ok(Text { batch, lines })
}

/// The model's non-key columns the reference names, each with whether it is numeric;
/// every key must be named and nothing else may be.
pub fn compared_columns(model: &GoldModel, text: &Text, file: &str) -> Result<Vec<(String, bool)>> {
    let schema = text.batch.schema();
    let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let missing: Vec<&str> = model
        .keys
        .iter()
        .map(String::as_str)
        .filter(|k| !header.contains(k))
        .collect();
    let unknown: Vec<&str> = header
        .iter()
        .copied()
        .filter(|h| model.schema.field_with_name(h).is_err())
        .collect();
    let columns: Vec<(String, bool)> = header
        .iter()
        .filter(|h| !model.keys.iter().any(|k| k == *h))
        .filter_map(|h| model.schema.field_with_name(h).ok())
        .map(|f| (f.name().clone(), f.data_type().is_numeric()))
        .collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "the header lacks key column(s) {}",
            missing.join(", ")
        ));
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "column(s) {} are not in gold.{}",
            unknown.join(", "),
            model.name
        ));
    }
    if columns.is_empty() && missing.is_empty() {
        problems.push("the header names no column to compare besides the keys".into());
    }
    if problems.is_empty() {
        return Ok(columns);
    }
    let names: Vec<&str> = model
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    Err(MedallionError::Usage(format!(
        "{file}: {} (gold.{} has {})",
        problems.join("; "),
        model.name,
        names.join(", ")
    )))
}

/// The reference typed as the model: each key cast to the gold column's type, each
/// compared column too, numbers to doubles (a value that does not read becomes null);
/// the text of every column kept beside it as `__raw_<name>`.
/// A key value that does not read is an error naming its line.
pub fn typed(model: &GoldModel, text: &Text, file: &str) -> Result<RecordBatch> {
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    let mut fields = Vec::new();
    let mut arrays = Vec::new();
    let schema = text.batch.schema();
    for (field, column) in schema.fields().iter().zip(text.batch.columns()) {
        let target = model.schema.field_with_name(field.name()).map_err(|e| {
            MedallionError::Internal(format!("reference column {}: {e}", field.name()))
        })?;
        let key = model.keys.contains(field.name());
        // A compared number is read as a double, not as gold's type: a decimal(12,3)
        // would round 3.5004 to 3.500 before the tolerance is applied.
        let ty = if !key && target.data_type().is_numeric() {
            DataType::Float64
        } else {
            target.data_type().clone()
        };
        let typed = cast_with_options(column, &ty, &options)
            .map_err(MedallionError::arrow("type the reference"))?;
        if key {
            unreadable_key(field.name(), &ty, column, &typed, text, file)?;
        }
        fields.push(Field::new(field.name(), ty, true));
        arrays.push(typed);
        fields.push(Field::new(raw(field.name()), DataType::Utf8, true));
        arrays.push(column.clone());
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
        .map_err(MedallionError::arrow("type the reference"))
}

/// The first key value that is written but does not read as the key's type.
fn unreadable_key(
    name: &str,
    ty: &DataType,
    text_column: &ArrayRef,
    typed: &ArrayRef,
    text: &Text,
    file: &str,
) -> Result<()> {
    let Some(row) = (0..typed.len()).find(|&i| typed.is_null(i) && text_column.is_valid(i)) else {
        return Ok(());
    };
    let value = text_column
        .as_any()
        .downcast_ref::<StringArray>()
        .map(|s| s.value(row).chars().take(SHOWN).collect::<String>())
        .unwrap_or_default();
    Err(MedallionError::BadFile {
        file: file.to_string(),
        message: format!(
            "line {}: key {name} \"{value}\" does not read as the model's type {ty}",
            text.lines[row]
        ),
    })
}

/// Reject a reference that names a key twice (as the key's type reads it: `2024-01-01`
/// and ` 2024-01-01` are one key).
pub async fn check_unique(ctx: &SessionContext, model: &GoldModel, file: &str) -> Result<()> {
    let shown: Vec<String> = model
        .keys
        .iter()
        .map(|k| format!("COALESCE(MIN({}), 'null')", ident(&raw(k))))
        .collect();
    let typed: Vec<String> = model.keys.iter().map(|k| ident(k)).collect();
    let sql = format!(
        "SELECT concat_ws(', ', {}) AS key FROM r GROUP BY {} HAVING COUNT(*) > 1 LIMIT 1",
        shown.join(", "),
        typed.join(", ")
    );
    let step = "check the reference's keys";
    let dup = ctx
        .sql(&sql)
        .await
        .map_err(MedallionError::sql(step))?
        .collect()
        .await
        .map_err(MedallionError::sql(step))?;
    let Some(b) = dup.iter().find(|b| b.num_rows() > 0) else {
        return Ok(());
    };
    let key = b
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .map(|s| s.value(0).chars().take(SHOWN).collect::<String>())
        .unwrap_or_default();
    Err(MedallionError::BadFile {
        file: file.to_string(),
        message: format!("key ({key}) appears more than once; a reference names each key once"),
    })
}
