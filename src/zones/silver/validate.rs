//! Typing and rules for one chunk of raw rows.
//!
//! Contract: every input row ends up in exactly one of `accepted` (typed, silver
//! layout) or `rejected` (raw text, lineage and *every* failed rule), so
//! accepted + rejected == rows in. Checks per value: missing (null token or absent)
//! → default or `required`; unparsable → `type`; otherwise each column rule. Then
//! every row rule (SQL over the typed row; NULL passes). `warn` rules only count;
//! the first `fail` rule broken is reported so the caller can abandon the file.

use std::collections::BTreeMap;
use std::sync::Arc;

use deltalake::arrow::array::{
    Array, ArrayRef, BooleanArray, Int64Array, ListBuilder, StringArray, StringBuilder,
    StructBuilder,
};
use deltalake::arrow::compute::filter_record_batch;
use deltalake::arrow::datatypes::{Schema, SchemaRef};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::common::DFSchema;
use deltalake::datafusion::physical_expr::PhysicalExpr;
use deltalake::datafusion::prelude::SessionContext;

use super::builders::TypedBuilder;
use crate::config::{ColumnSpec, Pipeline, RuleAction};
use crate::error::{MedallionError, Result};
use crate::row::RawRow;
use crate::schema;
use crate::zones::{Lineage, Violation, bronze};
use medallion_csv::{ColumnType, Value};

/// The outcome of validating one chunk.
#[derive(Debug)]
pub struct ValidatedChunk {
    /// Rows that passed, in the silver layout.
    pub accepted: RecordBatch,
    /// Rows that failed, in the rejected layout.
    pub rejected: RecordBatch,
    /// Rejected rows per rule (a row failing two rules counts under both).
    pub rejected_by_rule: BTreeMap<String, u64>,
    /// Rows that broke each `warn` rule.
    pub warnings: BTreeMap<String, u64>,
    /// The first `fail` rule broken: (line, rule, message).
    pub failure: Option<(u64, String, String)>,
}

impl ValidatedChunk {
    /// The chunk, or the error of the first `fail` rule it broke (the file's error).
    pub fn unless_failed(self, file: &str) -> Result<Self> {
        match self.failure {
            Some((line, rule, message)) => Err(MedallionError::FailRule {
                file: file.to_string(),
                line,
                rule,
                message,
            }),
            None => Ok(self),
        }
    }
}

/// One typed value, as [`Validator::type_value`] gives it.
enum Typed<'a> {
    Null,
    /// The column's default, for a missing value.
    Default(&'a Value),
    /// A string column's text.
    Str(&'a str),
    Value(Value),
}

/// Types and checks rows against the configuration.
pub struct Validator {
    pipeline: Arc<Pipeline>,
    typed_schema: SchemaRef,
    silver_schema: SchemaRef,
    rejected_schema: SchemaRef,
    row_rules: Vec<Arc<dyn PhysicalExpr>>,
}

impl Validator {
    pub fn new(pipeline: Arc<Pipeline>) -> Result<Self> {
        let typed_schema = Arc::new(Schema::new(
            pipeline
                .source
                .typed_columns()
                .map(|(n, t)| deltalake::arrow::datatypes::Field::new(n, t, true))
                .collect::<Vec<_>>(),
        ));
        let dfschema = DFSchema::try_from(typed_schema.as_ref().clone())
            .map_err(MedallionError::sql("row rule schema"))?;
        let ctx = SessionContext::new();
        let row_rules = pipeline
            .source
            .row_rules
            .iter()
            .map(|r| {
                ctx.create_physical_expr(r.expr.clone(), &dfschema)
                    .map_err(MedallionError::sql(format!("row rule {}", r.name)))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Validator {
            silver_schema: pipeline.source.silver_schema(),
            rejected_schema: pipeline.source.rejected_schema(),
            typed_schema,
            pipeline,
            row_rules,
        })
    }

    /// Validate a chunk of rows from one file.
    pub fn validate(&self, rows: &[RawRow], lineage: &Lineage) -> Result<ValidatedChunk> {
        let mut violations: Vec<Vec<Violation>> = rows.iter().map(|r| r.problems.clone()).collect();
        let specs = &self.pipeline.source.columns;
        let mut builders: Vec<TypedBuilder> = specs
            .iter()
            .map(|c| TypedBuilder::new(c.parser.ty, rows.len()))
            .collect();
        // Row by row (not column by column): a row's fields are read while in cache.
        let mut ignored = Vec::new();
        for (row, v) in rows.iter().zip(violations.iter_mut()) {
            // A cut record is rejected for being cut; its fields mean nothing more.
            let out = if row.cut { &mut ignored } else { v };
            for (i, (col, builder)) in specs.iter().zip(&mut builders).enumerate() {
                let raw = row.field(i);
                match self.type_value(col, raw, out) {
                    Typed::Null => builder.append(None),
                    Typed::Default(v) => builder.append(Some(v)),
                    Typed::Str(s) => builder.append_str(s),
                    Typed::Value(v) => builder.append(Some(&v)),
                }
            }
            ignored.clear();
        }
        let columns = builders
            .into_iter()
            .map(TypedBuilder::finish)
            .collect::<Result<Vec<_>>>()?;
        let typed = RecordBatch::try_new(self.typed_schema.clone(), columns)
            .map_err(MedallionError::arrow("build typed batch"))?;
        self.apply_row_rules(&typed, rows, &mut violations)?;
        self.split(rows, typed, violations, lineage)
    }

    /// Type one value, recording its violations. A string is not copied: it is
    /// appended to its column from the raw text.
    fn type_value<'a>(
        &'a self,
        col: &'a ColumnSpec,
        raw: Option<&'a str>,
        out: &mut Vec<Violation>,
    ) -> Typed<'a> {
        let csv = &self.pipeline.source.csv;
        let text = raw.map(|t| if csv.trim { t.trim() } else { t });
        let missing = match text {
            None => true,
            Some(t) => {
                let t = t.trim();
                csv.null_values.iter().any(|n| n == t)
            }
        };
        let Some(text) = text.filter(|_| !missing) else {
            if let Some((_, default)) = &col.default {
                return Typed::Default(default);
            }
            if col.required {
                out.push(Violation::new(
                    "required",
                    Some(&col.name),
                    "value is missing",
                ));
            }
            return Typed::Null;
        };
        if col.parser.ty == ColumnType::String {
            for rule in &col.rules {
                if let Some(message) = rule.check.check_str(text) {
                    out.push(
                        Violation::new(&rule.name, Some(&col.name), message)
                            .with_action(rule.action),
                    );
                }
            }
            return Typed::Str(text);
        }
        let value = match col.parser.parse(text) {
            Ok(v) => v,
            Err(message) => {
                out.push(Violation::new("type", Some(&col.name), message));
                return Typed::Null;
            }
        };
        for rule in &col.rules {
            if let Some(message) = rule.check.check(&value, text) {
                out.push(
                    Violation::new(&rule.name, Some(&col.name), message).with_action(rule.action),
                );
            }
        }
        Typed::Value(value)
    }

    fn apply_row_rules(
        &self,
        typed: &RecordBatch,
        rows: &[RawRow],
        violations: &mut [Vec<Violation>],
    ) -> Result<()> {
        for (rule, expr) in self.pipeline.source.row_rules.iter().zip(&self.row_rules) {
            let result = expr
                .evaluate(typed)
                .and_then(|v| v.into_array(typed.num_rows()))
                .map_err(MedallionError::sql(format!("row rule {}", rule.name)))?;
            let Some(passed) = result.as_any().downcast_ref::<BooleanArray>() else {
                return Err(MedallionError::Internal(format!(
                    "row rule {} is not boolean",
                    rule.name
                )));
            };
            for (i, v) in violations.iter_mut().enumerate() {
                if !rows[i].cut && passed.is_valid(i) && !passed.value(i) {
                    v.push(
                        Violation::new(
                            &rule.name,
                            None,
                            format!("check failed: {}", rule.sql.trim()),
                        )
                        .with_action(rule.action),
                    );
                }
            }
        }
        Ok(())
    }

    fn split(
        &self,
        rows: &[RawRow],
        typed: RecordBatch,
        violations: Vec<Vec<Violation>>,
        lineage: &Lineage,
    ) -> Result<ValidatedChunk> {
        let mut rejected_by_rule = BTreeMap::new();
        let mut warnings = BTreeMap::new();
        let mut failure = None;
        let mut keep = Vec::with_capacity(rows.len());
        for (row, vs) in rows.iter().zip(&violations) {
            let rejected = vs.iter().any(|v| v.action == RuleAction::Reject);
            for v in vs {
                match v.action {
                    RuleAction::Reject => *rejected_by_rule.entry(v.rule.clone()).or_insert(0) += 1,
                    // Warnings count rows that are kept; a rejected row is counted by its rejections.
                    RuleAction::Warn if !rejected => {
                        *warnings.entry(v.rule.clone()).or_insert(0) += 1
                    }
                    RuleAction::Warn => {}
                    RuleAction::Fail => {
                        failure
                            .get_or_insert_with(|| (row.line, v.rule.clone(), v.message.clone()));
                    }
                }
            }
            keep.push(!rejected);
        }
        let mask = BooleanArray::from(keep);
        let accepted = self.accepted_batch(rows, typed, &mask, lineage)?;
        let rejected_rows: Vec<(&RawRow, &Vec<Violation>)> = rows
            .iter()
            .zip(&violations)
            .zip(mask.iter())
            .filter(|(_, keep)| *keep == Some(false))
            .map(|(pair, _)| pair)
            .collect();
        let rejected = self.rejected_batch(&rejected_rows, lineage)?;
        Ok(ValidatedChunk {
            accepted,
            rejected,
            rejected_by_rule,
            warnings,
            failure,
        })
    }

    fn accepted_batch(
        &self,
        rows: &[RawRow],
        typed: RecordBatch,
        mask: &BooleanArray,
        lineage: &Lineage,
    ) -> Result<RecordBatch> {
        let n = rows.len();
        let mut columns: Vec<ArrayRef> = typed.columns().to_vec();
        let received = deltalake::arrow::array::TimestampMicrosecondArray::from(vec![
            lineage
                .received_at
                .timestamp_micros(
                );
            n
        ])
        .with_timezone("UTC");
        columns.push(Arc::new(received));
        columns.push(Arc::new(StringArray::from(vec![
            lineage
                .source_file
                .as_str();
            n
        ])));
        columns.push(Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.line as i64),
        )));
        columns.push(Arc::new(StringArray::from(vec![
            lineage.batch_id.as_str();
            n
        ])));
        let all = RecordBatch::try_new(self.silver_schema.clone(), columns)
            .map_err(MedallionError::arrow("build silver batch"))?;
        filter_record_batch(&all, mask).map_err(MedallionError::arrow("filter accepted rows"))
    }

    fn rejected_batch(
        &self,
        rows: &[(&RawRow, &Vec<Violation>)],
        lineage: &Lineage,
    ) -> Result<RecordBatch> {
        let raw: Vec<&RawRow> = rows.iter().map(|(r, _)| *r).collect();
        let mut columns = bronze::raw_columns(&raw, self.pipeline.source.columns.len());
        columns.extend(bronze::lineage_columns(&raw, lineage));
        let mut reasons = ListBuilder::new(StructBuilder::from_fields(
            schema::reason_fields(),
            rows.len(),
        ))
        .with_field(schema::reason_item_field());
        for (_, vs) in rows {
            let item = reasons.values();
            for v in vs.iter().filter(|v| v.action == RuleAction::Reject) {
                append_reason(item, v);
            }
            reasons.append(true);
        }
        columns.push(Arc::new(reasons.finish()));
        RecordBatch::try_new(self.rejected_schema.clone(), columns)
            .map_err(MedallionError::arrow("build rejected batch"))
    }
}

fn append_reason(item: &mut StructBuilder, v: &Violation) {
    if let Some(b) = item.field_builder::<StringBuilder>(0) {
        b.append_value(&v.rule);
    }
    if let Some(b) = item.field_builder::<StringBuilder>(1) {
        b.append_option(v.column.as_deref());
    }
    if let Some(b) = item.field_builder::<StringBuilder>(2) {
        b.append_value(&v.message);
    }
    item.append(true);
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;
