//! How an `upsert` source's batch reaches silver: its staged rows are read back in
//! slices of bounded size (`batch_rows`), each deduplicated (the last row of a key
//! wins, or the highest `sequence_by`) ahead of the writer on a thread of its own,
//! and written; they must end with the batch's last slice.
//!
//! Without `sequence_by` or `delete_when`, slices that replace no silver row (new
//! readings; every slice of a source's first load, which is not even scanned for them)
//! are appended by one writer and committed once ([`silver::BatchAppend`]; silver is
//! the state before the batch until then). The first slice that replaces a row, or may
//! repeat an earlier slice's key, ends that: what was written is committed, and that
//! slice and the rest go the usual way.
//!
//! When the batch's repeated keys were dropped while staged (its keys are unique
//! across slices), the usual way goes in rounds ([`silver::Round`]): consecutive
//! slices that replace rows in the same silver files are written as they come and
//! committed with one rewrite of those files.
//!
//! Otherwise the usual way: each slice's replaced silver rows are found (its keys' bounds let the
//! scan skip files), then it is appended (nothing replaced) or upserted (the files
//! holding those rows rewritten), one commit per slice. Only the batch's last commit
//! carries its silver transaction: an interrupted attempt redoes every slice, which is
//! idempotent (a slice already written finds all its keys, so it replaces them with the
//! same values, never appended twice). The gold keys
//! a slice touches come from its rows and the silver rows they replace; after an
//! interrupted attempt those replaced rows are gone, so gold is then recomputed in full.

use deltalake::DeltaTable;
use deltalake::arrow::record_batch::RecordBatch;

use crate::config::Pipeline;
use crate::error::Result;
use crate::ingest::lease::Lease;
use crate::report::BatchReport;
use crate::storage::{self, Lakehouse, UpsertMetrics};
use crate::zones::gold;
use crate::zones::silver::{self, BatchAppend, Round};

use super::modes::SilverStage;
use super::tables::APP_SILVER;

/// Write the staged rows of an upsert source's batch into silver, collecting the gold
/// keys they affect (unless gold is recomputed in full). Returns silver and whether
/// anything was written.
pub(super) async fn slices(
    (lake, lease): (&Lakehouse, &Lease),
    p: &Pipeline,
    mut silver: DeltaTable,
    staged: silver::StagedRows,
    stage: &SilverStage<'_>,
    affected: &mut [Vec<RecordBatch>],
    br: &mut BatchReport,
) -> Result<(DeltaTable, bool)> {
    let name = p.source.tables().silver;
    let pending = (p.source.sequence_by.is_none() && p.source.delete_when.is_none())
        .then(|| BatchAppend::new(&silver, &name, &p.source.key))
        .transpose()?;
    let mut touched = false;
    let ctx = storage::session();
    let mut t = std::time::Instant::now();
    // Deletes of earlier slices: silver no longer holds their sequence values.
    let mut tombstones = Vec::new();
    // A batch without accepted rows has no slice at all.
    let mut ended = staged.is_empty();
    // Rows in the slices: the others repeat a key later in the batch.
    let (staged_rows, mut sliced) = (staged.rows(), 0u64);
    let mut slices = silver::Slices::new(p, staged);
    let unique = slices.keys_unique();
    let mut pending = pending.map(|w| w.with_unique_keys(unique));
    // Keys unique across the batch: slices go in rounds.
    let mut rounds = unique.then_some(Rounds {
        lake,
        lease,
        p,
        stage,
        open: None,
    });
    while let Some(slice) = slices.next().await {
        let (rows, last) = slice?;
        ended = last;
        sliced += rows.iter().map(|b| b.num_rows() as u64).sum::<u64>();
        // Looking up the rows a slice replaces wants it as one batch (see
        // `silver::one_batch`); a first load looks up nothing.
        let mut rows = match stage.fresh {
            true => rows,
            false => silver::one_batch(p, rows)?,
        };
        tracing::debug!(ms = lap(&mut t), "waited for the next deduplicated slice");
        let found = match offer(
            (lake, lease),
            p,
            &mut silver,
            &mut pending,
            (rows, last),
            stage,
            (affected, br),
        )
        .await?
        {
            Offered::Appended => {
                tracing::debug!(ms = lap(&mut t), "slice appended");
                continue;
            }
            Offered::Done => {
                touched = true;
                break;
            }
            Offered::Rest(rest, found) => {
                rows = silver::one_batch(p, rest)?;
                found
            }
        };
        if let Some(rounds) = rounds.as_mut() {
            let done = (&mut *affected, &mut *br);
            silver = rounds.slice(silver, (rows, found, last), done).await?;
            tracing::debug!(ms = lap(&mut t), "slice written in its round");
            touched |= last;
            continue;
        }
        let replaced = match found {
            Some(replaced) => replaced,
            None => silver::replaced_rows(p, &silver, &rows).await?,
        };
        let (rows, superseded) =
            silver::sequence::not_superseded(p, rows, &replaced.rows, &tombstones).await?;
        br.superseded += superseded;
        tombstones.extend(silver::sequence::deletes(p, &rows).await?);
        tracing::debug!(
            ms = lap(&mut t),
            replaced = replaced.count(),
            "silver rows the slice replaces"
        );
        lease.check()?;
        let txn = last.then_some((APP_SILVER, stage.seq));
        let (after, m, whole) =
            silver::upsert_batch(&ctx, p, silver, (&rows, &replaced), stage.lineage, txn).await?;
        tracing::debug!(ms = lap(&mut t), "slice written");
        silver = after;
        lake.keep(&name, &silver);
        touched |= count(br, &m);
        if !stage.full {
            // Its rows and the rows they replaced, whole.
            add_affected(lake, p, affected, rows.into_iter().chain(whole).collect()).await?;
        }
    }
    if !ended {
        // Never commit a batch's silver stage without its last slice.
        return Err(crate::MedallionError::Internal(
            "the staged rows ended before their last slice".into(),
        ));
    }
    br.repeated += staged_rows.saturating_sub(sliced);
    Ok((silver, touched))
}

/// What became of a slice offered to the batch's open append.
enum Offered {
    /// Appended; the append stays open for the next slice.
    Appended,
    /// It was the last slice: everything is committed, with the batch's transaction.
    Done,
    /// To be upserted the usual way (after what was appended is committed), with the
    /// rows it replaces when they were found on the silver still current.
    Rest(Vec<RecordBatch>, Option<silver::Replaced>),
}

/// Offer a slice to the batch's open append (none once a slice went the usual way):
/// appended when it replaces no silver row and repeats no key of an earlier slice.
async fn offer(
    (lake, lease): (&Lakehouse, &Lease),
    p: &Pipeline,
    silver: &mut DeltaTable,
    pending: &mut Option<BatchAppend>,
    (rows, last): (Vec<RecordBatch>, bool),
    stage: &SilverStage<'_>,
    (affected, br): (&mut [Vec<RecordBatch>], &mut BatchReport),
) -> Result<Offered> {
    let Some(mut writer) = pending.take() else {
        return Ok(Offered::Rest(rows, None));
    };
    // Silver is still as it was before the batch (an empty one replaces nothing).
    let replaced = match stage.fresh {
        true => silver::Replaced::default(),
        false => silver::replaced_rows(p, silver, &rows).await?,
    };
    let name = p.source.tables().silver;
    let mut commit = async |writer: BatchAppend, txn: Option<(&str, i64)>| {
        tracing::debug!(
            rows = writer.rows(),
            done = txn.is_some(),
            "appended slices committed"
        );
        lease.check()?;
        let m = writer.commit(silver, stage.lineage, txn).await?;
        count(br, &m);
        lake.keep(&name, silver);
        Ok::<_, crate::MedallionError>(())
    };
    if replaced.is_empty() && writer.write(&rows).await? {
        if !stage.full {
            add_affected(lake, p, affected, rows).await?;
        }
        if !last {
            *pending = Some(writer);
            return Ok(Offered::Appended);
        }
        commit(writer, Some((APP_SILVER, stage.seq))).await?;
        return Ok(Offered::Done);
    }
    if writer.rows() > 0 {
        commit(writer, None).await?;
        super::failpoint("after_silver_part");
        return Ok(Offered::Rest(rows, None));
    }
    Ok(Offered::Rest(rows, (!stage.fresh).then_some(replaced)))
}

/// The rounds of a batch whose keys are unique across it (see [`silver::Round`]).
struct Rounds<'a, 's> {
    lake: &'a Lakehouse,
    lease: &'a Lease,
    p: &'a Pipeline,
    stage: &'a SilverStage<'s>,
    /// The round slices are added to.
    open: Option<Round>,
}

impl Rounds<'_, '_> {
    /// Add a deduplicated slice (with the rows it replaces when they were looked up
    /// already), committing the open round first when the slice does not join it, and
    /// the last round with the batch's transaction. Returns silver.
    async fn slice(
        &mut self,
        mut silver: DeltaTable,
        (rows, found, last): (Vec<RecordBatch>, Option<silver::Replaced>, bool),
        (affected, br): (&mut [Vec<RecordBatch>], &mut BatchReport),
    ) -> Result<DeltaTable> {
        let p = self.p;
        let mut found = match found {
            Some(found) => found,
            None => silver::replaced_rows(p, &silver, &rows).await?,
        };
        if let Some(open) = self.open.take_if(|r| !r.takes(&found)) {
            let stale = open.shares(&found);
            silver = self
                .commit(silver, open, None, (&mut *affected, &mut *br))
                .await?;
            if stale {
                // The round rewrote files holding rows the slice replaces.
                found = silver::replaced_rows(p, &silver, &rows).await?;
            }
        }
        let open = match self.open.take() {
            Some(open) => open,
            None => Round::new(p, &silver)?,
        };
        self.open.insert(open).add(&rows, found).await?;
        if !self.stage.full {
            add_affected(self.lake, p, affected, rows).await?;
        }
        if let Some(open) = self.open.take_if(|_| last) {
            let txn = Some((APP_SILVER, self.stage.seq));
            silver = self.commit(silver, open, txn, (affected, br)).await?;
        }
        Ok(silver)
    }

    /// Commit a round (with `txn` when it ends the batch), and add the gold keys of the
    /// rows it replaced. Returns silver.
    async fn commit(
        &self,
        silver: DeltaTable,
        round: Round,
        txn: Option<(&str, i64)>,
        (affected, br): (&mut [Vec<RecordBatch>], &mut BatchReport),
    ) -> Result<DeltaTable> {
        let (lake, p) = (self.lake, self.p);
        self.lease.check()?;
        let ctx = storage::session();
        let (silver, m, whole) = round
            .commit(&ctx, p, silver, self.stage.lineage, txn)
            .await?;
        lake.keep(&p.source.tables().silver, &silver);
        count(br, &m);
        if !self.stage.full {
            add_affected(lake, p, affected, whole).await?;
        }
        Ok(silver)
    }
}

/// Add the gold keys per model that the `touched` silver rows affect.
async fn add_affected(
    lake: &Lakehouse,
    p: &Pipeline,
    affected: &mut [Vec<RecordBatch>],
    touched: Vec<RecordBatch>,
) -> Result<()> {
    let per_model = gold::affected_keys(lake, p, touched).await?;
    for (keys, more) in affected.iter_mut().zip(per_model) {
        keys.extend(more);
    }
    Ok(())
}

/// Add a commit's counts to the report; true (something was committed).
fn count(br: &mut BatchReport, m: &UpsertMetrics) -> bool {
    br.silver.inserted += m.inserted;
    br.silver.updated += m.updated;
    br.silver.deleted += m.deleted;
    br.silver.version = m.version.or(br.silver.version);
    true
}

/// Milliseconds since `t`, restarting it (phase timings for debug logs).
pub(super) fn lap(t: &mut std::time::Instant) -> u64 {
    let ms = t.elapsed().as_millis() as u64;
    *t = std::time::Instant::now();
    ms
}
