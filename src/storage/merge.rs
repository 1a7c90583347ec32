//! Upsert by key with Delta MERGE. The source rows replace target rows with equal keys
//! and are inserted where no key matches. With a `present` flag column, source rows
//! whose flag is false delete the matching target row instead (used by gold to drop
//! keys whose silver rows are gone). The flag column itself is never stored.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::datafusion::common::{Column, ScalarValue};
use deltalake::datafusion::functions_aggregate::expr_fn::{count, max, min};
use deltalake::datafusion::logical_expr::{BinaryExpr, Expr, Operator};
use deltalake::datafusion::prelude::{DataFrame, SessionContext, col, lit};
use deltalake::kernel::transaction::CommitProperties;

use crate::error::{MedallionError, Result};

/// What to merge and how.
pub struct UpsertSpec<'a> {
    /// Table name for messages.
    pub table_name: &'a str,
    /// Key columns: equal keys match.
    pub keys: &'a [String],
    /// Columns written on update and insert (every stored column).
    pub columns: &'a [String],
    /// Optional boolean source column: false means "delete this key".
    pub present_flag: Option<&'a str>,
    /// Delete target rows that no source row matches (a full refresh).
    pub delete_unmatched: bool,
    /// Keys may be null, and a null key matches a null key (gold groups may be null).
    pub null_safe_keys: bool,
    /// Application transaction (app id, batch sequence) committed with the merge.
    pub txn: Option<(&'a str, i64)>,
}

/// Rows changed by one upsert, and the version it wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UpsertMetrics {
    pub inserted: u64,
    pub updated: u64,
    pub deleted: u64,
    pub version: Option<i64>,
}

impl UpsertMetrics {
    /// What an append of `rows` rows that ended `committed` changed: the rows were
    /// inserted only if this call wrote the version.
    pub fn appended(committed: super::Committed, rows: u64) -> Self {
        UpsertMetrics {
            inserted: match committed {
                super::Committed::Wrote(_) => rows,
                _ => 0,
            },
            version: committed.version(),
            ..UpsertMetrics::default()
        }
    }
}

fn quoted(side: &str, column: &str) -> String {
    format!("{side}.\"{}\"", column.replace('"', "\"\""))
}

fn target(k: &str) -> Expr {
    Expr::Column(Column::new(Some("target"), k))
}

/// One key column's literal bounds over a frame.
pub struct KeyBounds {
    pub key: String,
    pub lo: ScalarValue,
    pub hi: ScalarValue,
    /// Some rows have no value for the key.
    pub nulls: bool,
}

impl KeyBounds {
    /// `c` within the bounds (or null, when the frame had nulls).
    pub(crate) fn admits(&self, c: Expr) -> Expr {
        let range = c
            .clone()
            .gt_eq(lit(self.lo.clone()))
            .and(c.clone().lt_eq(lit(self.hi.clone())));
        if self.nulls {
            c.is_null().or(range)
        } else {
            range
        }
    }
}

/// Each key column's bounds over `df`; keys with no value at all are left out.
pub async fn key_bounds(df: &DataFrame, keys: &[String]) -> Result<Vec<KeyBounds>> {
    let mut aggs: Vec<Expr> = keys
        .iter()
        .enumerate()
        .flat_map(|(i, k)| {
            [
                min(col(Column::from_name(k))).alias(format!("__min{i}")),
                max(col(Column::from_name(k))).alias(format!("__max{i}")),
                count(col(Column::from_name(k))).alias(format!("__n{i}")),
            ]
        })
        .collect();
    aggs.push(count(lit(1)).alias("__rows"));
    let err = || MedallionError::sql("key bounds");
    let bounds = df
        .clone()
        .aggregate(vec![], aggs)
        .map_err(err())?
        .collect()
        .await
        .map_err(err())?;
    let mut out = Vec::new();
    if let Some(b) = bounds.first().filter(|b| b.num_rows() == 1) {
        let rows = ScalarValue::try_from_array(b.column(3 * keys.len()), 0).map_err(err())?;
        for (i, k) in keys.iter().enumerate() {
            let lo = ScalarValue::try_from_array(b.column(3 * i), 0).map_err(err())?;
            let hi = ScalarValue::try_from_array(b.column(3 * i + 1), 0).map_err(err())?;
            let n = ScalarValue::try_from_array(b.column(3 * i + 2), 0).map_err(err())?;
            if !lo.is_null() && !hi.is_null() {
                out.push(KeyBounds {
                    key: k.clone(),
                    lo,
                    hi,
                    nulls: n != rows,
                });
            }
        }
    }
    Ok(out)
}

/// `df` restricted to each key column's literal `[min, max]` over `bounds_of`: a scan
/// of a Delta table then skips the files (and row groups) whose statistics lie outside.
pub async fn within_key_bounds(
    df: DataFrame,
    bounds_of: &DataFrame,
    keys: &[String],
) -> Result<DataFrame> {
    let mut df = df;
    for b in key_bounds(bounds_of, keys).await? {
        df = df
            .filter(b.admits(col(Column::from_name(&b.key))))
            .map_err(MedallionError::sql("filter by key bounds"))?;
    }
    Ok(df)
}

/// Equal keys (with `null_safe_keys`, a null key matches a null key), plus each key's
/// literal [min, max] over the source: the bounds do not change which rows match (a
/// matching target key equals a source key), but they let delta-rs skip target files
/// whose statistics lie outside them instead of scanning the whole table (delta-rs
/// #3491, #3786). Not used when unmatched target rows are deleted, where every target
/// row must be considered.
async fn match_predicate(source: &DataFrame, spec: &UpsertSpec<'_>) -> Result<Expr> {
    let mut conjuncts: Vec<Expr> = spec
        .keys
        .iter()
        .map(|k| {
            let s = Expr::Column(Column::new(Some("source"), k));
            if spec.null_safe_keys {
                Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(target(k)),
                    Operator::IsNotDistinctFrom,
                    Box::new(s),
                ))
            } else {
                target(k).eq(s)
            }
        })
        .collect();
    if !spec.delete_unmatched {
        for b in key_bounds(source, spec.keys).await? {
            conjuncts.push(b.admits(target(&b.key)));
        }
    }
    Ok(conjuncts
        .into_iter()
        .reduce(Expr::and)
        .unwrap_or_else(|| lit(true)))
}

/// MERGE `source` into `table` on `spec.keys`.
pub async fn upsert(
    table: DeltaTable,
    ctx: &SessionContext,
    source: DataFrame,
    spec: &UpsertSpec<'_>,
    props: CommitProperties,
) -> Result<(DeltaTable, UpsertMetrics)> {
    let before = table.version();
    let props = match spec.txn {
        Some((app, seq)) => {
            props.with_application_transaction(deltalake::kernel::Transaction::new(app, seq))
        }
        None => props,
    };
    let reload = table.clone();
    let writer_properties = super::write::table_writer_properties(&table, spec.table_name)?;
    let predicate = match_predicate(&source, spec).await?;
    let flag = spec.present_flag.map(|f| quoted("source", f));
    let columns = spec.columns;
    let err = MedallionError::delta("merge", spec.table_name);
    let mut builder = table
        .merge(source, predicate)
        .with_source_alias("source")
        .with_target_alias("target")
        .with_session_state(Arc::new(ctx.state()))
        .with_writer_properties(writer_properties)
        .with_commit_properties(props)
        .when_matched_update(|mut u| {
            if let Some(f) = &flag {
                u = u.predicate(f.as_str());
            }
            for c in columns {
                u = u.update(c.as_str(), quoted("source", c));
            }
            u
        })
        .and_then(|b| {
            b.when_not_matched_insert(|mut i| {
                if let Some(f) = &flag {
                    i = i.predicate(f.as_str());
                }
                for c in columns {
                    i = i.set(c.as_str(), quoted("source", c));
                }
                i
            })
        });
    if let Some(f) = &flag {
        builder = builder.and_then(|b| b.when_matched_delete(|d| d.predicate(format!("NOT {f}"))));
    }
    if spec.delete_unmatched {
        builder = builder.and_then(|b| b.when_not_matched_by_source_delete(|d| d));
    }
    let merged = builder
        .map_err(MedallionError::delta("merge", spec.table_name))?
        .await;
    let (table, m) = match merged {
        Ok(done) => done,
        Err(e) => {
            // An ambiguous commit may have landed: never write it twice.
            if let Some((app, seq)) = spec.txn {
                let mut t = reload;
                t.update_state()
                    .await
                    .map_err(MedallionError::delta("reload", spec.table_name))?;
                if super::stage_done(&t, app, spec.table_name, seq).await? {
                    return Ok((t, UpsertMetrics::default()));
                }
            }
            return Err(err(e));
        }
    };
    tracing::debug!(
        table = spec.table_name,
        files_scanned = m.num_target_files_scanned,
        files_skipped = m.num_target_files_skipped_during_scan,
        scan_ms = m.scan_time_ms,
        rewrite_ms = m.rewrite_time_ms,
        "merge"
    );
    let version = table
        .version()
        .filter(|v| Some(*v) != before)
        .map(|v| v as i64);
    Ok((
        table,
        UpsertMetrics {
            inserted: m.num_target_rows_inserted as u64,
            updated: m.num_target_rows_updated as u64,
            deleted: m.num_target_rows_deleted as u64,
            version,
        },
    ))
}
