//! A ledger written before medallion had several sources has no `source` column: every
//! row belongs to the one source of that time. The first run that sees it (under the
//! ingest lease, before any batch) adds the column and labels those rows, so that the
//! ledger's files stay loaded exactly once after the upgrade. No data table changes.

use super::LEDGER_TABLE;
use crate::config::Pipeline;
use crate::error::Result;
use crate::schema::{LEDGER_SOURCE, quote_literal};
use crate::storage::{self, Lakehouse};

/// Whether the ledger exists without a `source` column.
async fn unlabelled(lake: &Lakehouse) -> Result<Option<deltalake::DeltaTable>> {
    let Some(table) = lake.open(LEDGER_TABLE).await? else {
        return Ok(None);
    };
    let schema = storage::arrow_schema(&table, LEDGER_TABLE)?;
    Ok(schema
        .field_with_name(LEDGER_SOURCE)
        .is_err()
        .then_some(table))
}

/// The source a ledger from before sources belongs to, when the ledger is one: the
/// only configured source, or else the only configured source whose bronze table
/// exists. When that cannot be told, why goes to `problems`.
pub async fn unlabelled_source(
    lake: &Lakehouse,
    p: &Pipeline,
    problems: &mut Vec<String>,
) -> Result<Option<String>> {
    if unlabelled(lake).await?.is_none() {
        return Ok(None);
    }
    if let [only] = p.sources.as_slice() {
        return Ok(Some(only.name.clone()));
    }
    let mut existing = Vec::new();
    for s in &p.sources {
        if lake.open(&s.tables().bronze).await?.is_some() {
            existing.push(s.name.clone());
        }
    }
    match existing.as_slice() {
        [one] => Ok(Some(one.clone())),
        _ => {
            problems.push(format!(
                "{LEDGER_TABLE}: the ledger was written by a medallion with one source, and \
                 {} of the configured sources have a bronze table, so which source its files \
                 belong to cannot be told; run once with only that source configured",
                if existing.is_empty() {
                    "none".to_string()
                } else {
                    existing.join(" and ")
                }
            ));
            Ok(None)
        }
    }
}

/// Label every row of a ledger from before sources with `source`: its rows are written
/// again with the `source` column, in one commit (the application transactions stay).
/// A ledger already labelled is left alone. Runs under the ingest lease.
pub async fn label_rows(lake: &Lakehouse, source: &str) -> Result<()> {
    let Some(table) = unlabelled(lake).await? else {
        return Ok(());
    };
    let ctx = storage::session();
    storage::register(&ctx, "ledger", &table).await?;
    let sql = format!(
        "SELECT *, CAST({} AS VARCHAR) AS {LEDGER_SOURCE} FROM ledger",
        quote_literal(source)
    );
    let rows = storage::sql_batches(&ctx, &sql, "read the file ledger").await?;
    let n: usize = rows.iter().map(|b| b.num_rows()).sum();
    let props = storage::commit_info(
        "label_ledger",
        serde_json::json!({ "source": source, "rows": n, "note": format!("ledger rows from before sources belong to {source}") }),
    );
    let table = storage::rewrite_with_columns(table, LEDGER_TABLE, rows, props).await?;
    lake.keep(LEDGER_TABLE, &table);
    tracing::info!(
        source,
        rows = n,
        "the ledger's rows from before sources were labelled"
    );
    Ok(())
}
