//! The table names every command shares, and the read-side commands `query` (SQL over
//! every table, with time travel) and `history` (a table's commits with medallion's
//! commit info); `vacuum`. `status` has a module of its own.

use std::sync::Arc;

use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::catalog::MemorySchemaProvider;
use deltalake::datafusion::prelude::SessionContext;

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::ingest::ledger;
use crate::storage::{self, HistoryEntry, Lakehouse, TimeTravel};

/// Every table of the lakehouse: (SQL name `zone.table`, path under the root).
pub fn tables(p: &Pipeline) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = p
        .sources
        .iter()
        .flat_map(|s| {
            let t = s.tables();
            [t.bronze, t.silver, t.rejected]
        })
        .map(|rel| (rel.replace('/', "."), rel))
        .collect();
    out.extend(
        p.gold
            .iter()
            .map(|m| (format!("gold.{}", m.name), m.table())),
    );
    out.push(("_medallion.files".into(), ledger::LEDGER_TABLE.into()));
    out.push(("_medallion.runs".into(), crate::runs::RUNS_TABLE.into()));
    out.extend(p.sources.iter().map(|s| {
        (
            format!("_medallion.lease_{}", s.name),
            crate::ingest::lease::source_lease(&s.name),
        )
    }));
    out
}

/// Resolve a table name given as `zone.table` or `zone/table`.
pub fn resolve_table(p: &Pipeline, name: &str) -> Result<(String, String)> {
    let wanted = name.replace('/', ".");
    tables(p)
        .into_iter()
        .find(|(sql, _)| *sql == wanted)
        .ok_or_else(|| {
            let known = tables(p)
                .into_iter()
                .map(|(s, _)| s)
                .collect::<Vec<_>>()
                .join(", ");
            MedallionError::Usage(format!("unknown table \"{name}\" (known: {known})"))
        })
}

/// Run `sql` over the tables it names, each as of `at` when given.
pub async fn query(p: &Pipeline, sql: &str, at: Option<TimeTravel>) -> Result<Vec<RecordBatch>> {
    let lake = Lakehouse::new(p.lakehouse.clone());
    let ctx = storage::session();
    let state = ctx.state();
    let dialect = state.config().options().sql_parser.dialect;
    let parse = |e: deltalake::datafusion::error::DataFusionError| {
        MedallionError::Usage(format!("cannot parse the query: {e}"))
    };
    let statement = state.sql_to_statement(sql, &dialect).map_err(parse)?;
    let referenced = state.resolve_table_references(&statement).map_err(parse)?;
    let known = tables(p);
    for reference in referenced {
        let name = reference.to_string();
        let Some((sql_name, relative)) = known.iter().find(|(s, _)| *s == name) else {
            continue; // Not ours (a CTE, or unknown): DataFusion reports it if it is missing.
        };
        match storage::open_at(&lake, relative, at).await? {
            Some(table) => register_qualified(&ctx, sql_name, &table).await?,
            None => {
                return Err(MedallionError::Usage(format!(
                    "table {sql_name} does not exist yet (run `medallion run` first)"
                )));
            }
        }
    }
    // A query that does not parse or plan is a command-line error; one that fails
    // while running is not.
    let df = ctx
        .sql(sql)
        .await
        .map_err(|e| MedallionError::Usage(format!("cannot plan the query: {e}")))?;
    df.collect()
        .await
        .map_err(MedallionError::sql("run the query"))
}

/// Register `table` as `schema.name`, creating the schema in the default catalog.
async fn register_qualified(
    ctx: &SessionContext,
    sql_name: &str,
    table: &deltalake::DeltaTable,
) -> Result<()> {
    if let Some((schema, _)) = sql_name.split_once('.')
        && let Some(catalog) = ctx.catalog("datafusion")
        && catalog.schema(schema).is_none()
    {
        catalog
            .register_schema(schema, Arc::new(MemorySchemaProvider::new()))
            .map_err(MedallionError::sql(format!("register schema {schema}")))?;
    }
    storage::register(ctx, sql_name, table).await
}

/// Commits of one table, newest first, with the table's SQL name (`zone.table`).
pub async fn history(p: &Pipeline, name: &str) -> Result<(String, Vec<HistoryEntry>)> {
    let (sql_name, relative) = resolve_table(p, name)?;
    let lake = Lakehouse::new(p.lakehouse.clone());
    let table = lake
        .open(&relative)
        .await?
        .ok_or_else(|| MedallionError::Usage(format!("table {sql_name} does not exist yet")))?;
    let entries = storage::history(&table, &sql_name, None).await?;
    Ok((sql_name, entries))
}

/// Vacuum every table; returns (table, files deleted or that would be).
pub async fn vacuum(
    p: &Pipeline,
    retention: std::time::Duration,
    dry_run: bool,
) -> Result<Vec<(String, Vec<String>)>> {
    let lake = Lakehouse::new(p.lakehouse.clone());
    if !dry_run {
        lake.ensure_writable().await?;
    }
    let mut out = Vec::new();
    for (sql_name, relative) in tables(p) {
        let files = storage::vacuum(&lake, &relative, retention, dry_run).await?;
        out.push((sql_name, files));
    }
    Ok(out)
}
