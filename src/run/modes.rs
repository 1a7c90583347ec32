//! How each source mode writes a batch's accepted rows into silver (the `upsert` mode,
//! in slices, is in `batch`): an `append` source appends them all in one commit; a
//! `snapshot` source makes silver equal to the batch's one file (and an empty snapshot
//! is refused). Each collects the gold keys the rows it touched affect, and commits
//! with the batch's silver transaction. Also the locks of the gold models a source
//! feeds together with others, held from silver to gold.

use deltalake::arrow::record_batch::RecordBatch;

use crate::config::{Pipeline, SourceMode};
use crate::error::Result;
use crate::ingest::lease::{Lease, gold_lock};
use crate::report::BatchReport;
use crate::schema::quote_ident;
use crate::storage::{self, AppendWriter, Lakehouse};
use crate::zones::Lineage;
use crate::zones::gold;
use crate::zones::silver;

use super::assemble::Batch;
use super::tables::APP_SILVER;

/// How the silver stage of a batch runs.
pub(super) struct SilverStage<'a> {
    /// Committed by an earlier attempt.
    pub done: bool,
    /// Gold is recomputed in full (so no affected keys are collected).
    pub full: bool,
    /// Silver was empty before this batch (and no attempt of it committed anything).
    pub fresh: bool,
    pub lineage: &'a Lineage,
    pub seq: i64,
}

/// Write the batch's staged rows into an `append` or `snapshot` source's silver.
pub(super) async fn write(
    ctx: (&Lakehouse, &Lease),
    p: &Pipeline,
    silver: deltalake::DeltaTable,
    staged: &mut silver::StagedRows,
    stage: &SilverStage<'_>,
    affected: &mut [Vec<RecordBatch>],
    br: &mut BatchReport,
) -> Result<deltalake::DeltaTable> {
    match p.source.mode {
        SourceMode::Append => append(ctx, p, silver, staged, stage, affected, br).await,
        SourceMode::Snapshot => snapshot(ctx, p, silver, staged, stage, affected, br).await,
        SourceMode::Upsert => Err(crate::MedallionError::Internal(
            "an upsert source's slices are written by the batch".into(),
        )),
    }
}

/// Append every staged row to an append source's silver in one commit (so an
/// interrupted attempt never appended any), collecting the gold keys they affect.
async fn append(
    (lake, lease): (&Lakehouse, &Lease),
    p: &Pipeline,
    mut silver: deltalake::DeltaTable,
    staged: &mut silver::StagedRows,
    stage: &SilverStage<'_>,
    affected: &mut [Vec<RecordBatch>],
    br: &mut BatchReport,
) -> Result<deltalake::DeltaTable> {
    let name = p.source.tables().silver;
    let mut writer = AppendWriter::new(&silver, &name)?;
    while let Some((slice, _)) = staged.next_slice(p.source.batch_rows)? {
        if !stage.full {
            let per_model = gold::affected_keys(lake, p, slice.clone()).await?;
            for (keys, more) in affected.iter_mut().zip(per_model) {
                keys.extend(more);
            }
        }
        for b in slice {
            writer.write(b).await?;
        }
    }
    let rows = writer.rows();
    lease.check()?;
    let props = storage::commit_info(
        "silver_append",
        serde_json::json!({ "batch_id": stage.lineage.batch_id, "source_file": stage.lineage.source_file, "rows": rows }),
    );
    let committed = writer
        .commit(&mut silver, props, Some((APP_SILVER, stage.seq)))
        .await?;
    if let storage::Committed::Wrote(_) = committed {
        br.silver.inserted += rows;
    }
    br.silver.version = committed.version().or(br.silver.version);
    Ok(silver)
}

/// The keys of the batch's rejected rows (committed before silver), typed as silver
/// types them (a key text that does not read as its type is left out: it names no
/// silver row).
async fn rejected_keys(
    lake: &Lakehouse,
    p: &Pipeline,
    lineage: &Lineage,
) -> Result<Vec<RecordBatch>> {
    use deltalake::arrow::compute::{CastOptions, cast_with_options};
    let relative = p.source.tables().rejected;
    let Some(table) = lake.open(&relative).await? else {
        return Ok(Vec::new());
    };
    let ctx = storage::session();
    storage::register(&ctx, "__rejected", &table).await?;
    let keys: Vec<String> = p
        .source
        .key
        .iter()
        .map(|k| format!("TRIM({q}) AS {q}", q = quote_ident(k)))
        .collect();
    let sql = format!(
        "SELECT DISTINCT {} FROM __rejected WHERE {} = {}",
        keys.join(", "),
        quote_ident(crate::schema::BATCH_ID),
        crate::schema::quote_literal(&lineage.batch_id)
    );
    let rows = storage::sql_batches(&ctx, &sql, "read the snapshot's rejected keys").await?;
    let layout = p.source.silver_schema();
    let fields: Vec<_> = p
        .source
        .key
        .iter()
        .filter_map(|k| layout.field_with_name(k).ok().cloned())
        .collect();
    let typed = std::sync::Arc::new(deltalake::arrow::datatypes::Schema::new(fields));
    let safe = CastOptions {
        safe: true,
        ..Default::default()
    };
    let err = || crate::MedallionError::arrow("type the snapshot's rejected keys");
    let mut out = Vec::new();
    for b in rows.into_iter().filter(|b| b.num_rows() > 0) {
        let columns = typed
            .fields()
            .iter()
            .zip(b.columns())
            .map(|(f, c)| cast_with_options(c, f.data_type(), &safe))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(err())?;
        out.push(RecordBatch::try_new(typed.clone(), columns).map_err(err())?);
    }
    Ok(out)
}

/// Make a snapshot source's silver equal to the batch's file (a snapshot batch holds one
/// file): its rows, the last line of a key winning, compared with silver so that only
/// changed rows are written and missing keys deleted.
async fn snapshot(
    (lake, lease): (&Lakehouse, &Lease),
    p: &Pipeline,
    silver: deltalake::DeltaTable,
    staged: &mut silver::StagedRows,
    stage: &SilverStage<'_>,
    affected: &mut [Vec<RecordBatch>],
    br: &mut BatchReport,
) -> Result<deltalake::DeltaTable> {
    let mut state = Vec::new();
    while let Some((slice, _)) = staged.next_slice(p.source.batch_rows)? {
        state.extend(slice);
    }
    let state = silver::dedupe_batch(p, state)?;
    let held = rejected_keys(lake, p, stage.lineage).await?;
    let changes = silver::snapshot::changes(p, &silver, state, held).await?;
    if !stage.full && !changes.touched.is_empty() {
        let per_model = gold::affected_keys(lake, p, changes.touched).await?;
        for (keys, more) in affected.iter_mut().zip(per_model) {
            keys.extend(more);
        }
    }
    lease.check()?;
    let txn = (APP_SILVER, stage.seq);
    let (silver, m) = silver::snapshot::apply(p, silver, changes.rows, stage.lineage, txn).await?;
    br.silver.inserted += m.inserted;
    br.silver.updated += m.updated;
    br.silver.deleted += m.deleted;
    br.silver.version = m.version.or(br.silver.version);
    Ok(silver)
}

/// A snapshot file without an accepted row would empty silver: it fails (and is tried
/// again next run) unless the source has `allow_empty_snapshot: true`. Its batch holds
/// only it, so nothing of it is committed.
pub(super) fn refuse_empty_snapshots(p: &Pipeline, batch: &mut Batch) {
    if p.source.mode != SourceMode::Snapshot || p.source.allow_empty_snapshot {
        return;
    }
    for i in 0..batch.members.len() {
        let r = &batch.members[i].report;
        if r.loaded() && r.silver_accepted == 0 {
            let message = format!(
                "snapshot with no accepted row ({} read, {} rejected): it would delete every \
                 row of {}; refused (set `allow_empty_snapshot: true` to accept it)",
                r.rows_read,
                r.rejected,
                p.source.tables().silver
            );
            batch.fail(i, message);
        }
    }
}

/// Take the locks of the gold models the focused source feeds together with other
/// sources into `lease` (checked with it from then on); returns them, for
/// [`Lease::let_go`].
pub(super) async fn lock_shared_models(
    lake: &Lakehouse,
    p: &Pipeline,
    lease: &Lease,
) -> Result<Vec<String>> {
    let locks: Vec<String> = p
        .gold
        .iter()
        .filter(|m| m.reads(&p.source.name) && m.sources.len() > 1)
        .map(|m| gold_lock(&m.name))
        .collect();
    if !locks.is_empty() {
        lease.check()?;
        lease.hold_more(lake, &locks, false).await?;
    }
    Ok(locks)
}
