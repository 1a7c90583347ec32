//! Snapshot sources: each file is the complete current state of a reference table, so
//! after it silver is exactly its accepted rows (the last line of a key wins).
//!
//! Contract: [`changes`] compares the snapshot with silver on the configured columns
//! (lineage and `received_at` do not count) and returns only what differs: rows new or
//! changed (flagged present) and silver rows whose key the snapshot lacks (flagged
//! absent); [`apply`] MERGEs just those on the key, so an unchanged row, and a data file
//! holding only unchanged rows, is never rewritten, and keeps the lineage of the batch
//! that last changed it. The touched rows (the new versions, and the old versions of
//! the rows changed or deleted) are what the gold models are refreshed for.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::datasource::MemTable;

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::schema::{self, quote_ident};
use crate::storage::{self, AppendWriter, UpsertMetrics, UpsertSpec};
use crate::zones::Lineage;

/// The flag of a change row: false deletes its key.
const PRESENT: &str = "__present";

/// What makes silver equal to a snapshot.
pub struct SnapshotChanges {
    /// Silver's configured columns plus [`PRESENT`]: rows to upsert, keys to delete.
    pub rows: Vec<RecordBatch>,
    /// Silver rows the change touches, old and new versions (for the gold models).
    pub touched: Vec<RecordBatch>,
}

/// Compare the snapshot's rows `state` (one row per key) with `silver`. Keys the
/// snapshot holds only in rejected rows (`held`: their keys, typed as silver's) are
/// not deleted: the file did not say they are gone, only that this row of
/// theirs is bad.
pub async fn changes(
    p: &Pipeline,
    silver: &DeltaTable,
    state: Vec<RecordBatch>,
    held: Vec<RecordBatch>,
) -> Result<SnapshotChanges> {
    let ctx = storage::session();
    let err = || MedallionError::sql("compare the snapshot with silver");
    let layout = p.source.silver_schema();
    let snap = MemTable::try_new(layout.clone(), vec![state]).map_err(err())?;
    ctx.register_table("__snap", Arc::new(snap))
        .map_err(err())?;
    storage::register(&ctx, "__silver_table", silver).await?;
    let all: Vec<String> = schema::column_names(&layout)
        .iter()
        .map(|c| quote_ident(c))
        .collect();
    let all = all.join(", ");
    ctx.register_table(
        "__silver",
        ctx.sql(&format!("SELECT {all} FROM __silver_table"))
            .await
            .map_err(err())?
            .into_view(),
    )
    .map_err(err())?;
    let business: Vec<String> = p
        .source
        .columns
        .iter()
        .map(|c| quote_ident(&c.name))
        .collect();
    let business = business.join(", ");
    let keys: Vec<String> = p.source.key.iter().map(|k| quote_ident(k)).collect();
    let on = |l: &str, r: &str| {
        keys.iter()
            .map(|k| format!("{l}.{k} = {r}.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    let key_list = keys.join(", ");
    let (s_all, t_all) = (prefixed("s", &layout), prefixed("t", &layout));
    // Keys whose configured values differ from silver's (or that silver lacks).
    let changed_keys = format!(
        "SELECT {key_list} FROM (SELECT {business} FROM __snap EXCEPT SELECT {business} FROM __silver)"
    );
    let changed = format!(
        "SELECT {s_all} FROM __snap s JOIN ({changed_keys}) c ON {}",
        on("s", "c")
    );
    let held_on = p
        .source
        .key
        .iter()
        .map(|k| format!("h.{q} = t.{q}", q = quote_ident(k)))
        .collect::<Vec<_>>()
        .join(" AND ");
    let held_schema = held.first().map(|b| b.schema());
    let spared = match held_schema {
        Some(schema) => {
            let table = MemTable::try_new(schema, vec![held]).map_err(err())?;
            ctx.register_table("__held", Arc::new(table))
                .map_err(err())?;
            format!(" AND NOT EXISTS (SELECT 1 FROM __held h WHERE {held_on})")
        }
        None => String::new(),
    };
    let gone = format!(
        "SELECT {t_all} FROM __silver t WHERE NOT EXISTS (SELECT 1 FROM __snap s WHERE {}){spared}",
        on("s", "t")
    );
    let replaced = format!(
        "SELECT {t_all} FROM __silver t JOIN ({changed_keys}) c ON {}",
        on("t", "c")
    );
    let step = "compare the snapshot with silver";
    let rows = storage::sql_batches(
        &ctx,
        &format!(
            "SELECT *, TRUE AS {PRESENT} FROM ({changed}) UNION ALL SELECT *, FALSE AS {PRESENT} FROM ({gone})"
        ),
        step,
    )
    .await?;
    let touched = storage::sql_batches(
        &ctx,
        &format!("{changed} UNION ALL {gone} UNION ALL {replaced}"),
        step,
    )
    .await?;
    Ok(SnapshotChanges {
        rows: rows.into_iter().filter(|b| b.num_rows() > 0).collect(),
        touched: touched.into_iter().filter(|b| b.num_rows() > 0).collect(),
    })
}

/// `t.a, t.b, …` over every column of `layout`.
fn prefixed(alias: &str, layout: &deltalake::arrow::datatypes::Schema) -> String {
    schema::column_names(layout)
        .iter()
        .map(|c| format!("{alias}.{}", quote_ident(c)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Write the changes into silver in one commit carrying `txn` (also when nothing
/// changed, so the batch's silver stage is done).
pub async fn apply(
    p: &Pipeline,
    silver: DeltaTable,
    rows: Vec<RecordBatch>,
    lineage: &Lineage,
    txn: (&str, i64),
) -> Result<(DeltaTable, UpsertMetrics)> {
    let name = p.source.tables().silver;
    let n_rows: usize = rows.iter().map(|b| b.num_rows()).sum();
    let props = storage::commit_info(
        "silver_snapshot",
        serde_json::json!({
            "batch_id": lineage.batch_id,
            "source_file": lineage.source_file,
            "rows": n_rows,
        }),
    );
    let Some(layout) = rows.first().map(|b| b.schema()) else {
        let mut silver = silver;
        let writer = AppendWriter::new(&silver, &name)?;
        let committed = writer.commit(&mut silver, props, Some(txn)).await?;
        let metrics = UpsertMetrics {
            version: committed.version(),
            ..UpsertMetrics::default()
        };
        return Ok((silver, metrics));
    };
    let ctx = storage::session();
    let err = || MedallionError::sql("stage the snapshot's changes");
    let staged = MemTable::try_new(layout, vec![rows]).map_err(err())?;
    let source = ctx.read_table(Arc::new(staged)).map_err(err())?;
    let columns = schema::column_names(&p.source.silver_schema());
    let spec = UpsertSpec {
        table_name: &name,
        keys: &p.source.key,
        columns: &columns,
        present_flag: Some(PRESENT),
        delete_unmatched: false,
        null_safe_keys: false,
        txn: Some(txn),
    };
    storage::upsert(silver, &ctx, source, &spec, props).await
}
