//! `medallion rebuild --dry-run`: the whole recompute without writing anything, to
//! tell how many rows would move between silver and rejected, per rule.

use std::collections::HashMap;
use std::sync::Arc;

use super::{RebuildReport, Target, silver};
use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::ingest::ledger;
use crate::storage::{self, Lakehouse};
use crate::zones::silver::Validator;

/// A dry run: recompute without writing, and count what would change.
pub(super) async fn dry(
    lake: &Lakehouse,
    p: &Arc<Pipeline>,
    target: &Target,
) -> Result<RebuildReport> {
    let state = ledger::state(lake, &p.source.name).await?;
    if let Some(open) = state.unfinished.first() {
        return Err(MedallionError::Busy(format!(
            "batch {} ({}) is open: run `medallion run` to complete it first",
            open.seq, open.file
        )));
    }
    if state.open_rebuild.is_some() {
        return Err(MedallionError::Busy(
            "a rebuild is unfinished: run `medallion run` or `medallion rebuild` to complete it first"
                .into(),
        ));
    }
    let tables = p.source.tables();
    let ctx = storage::session();
    let mut report = RebuildReport {
        source: p.source.name.clone(),
        dry_run: true,
        ..RebuildReport::default()
    };
    for (i, name) in [&tables.silver, &tables.rejected].into_iter().enumerate() {
        if let Some(t) = lake.open(name).await? {
            let n = storage::row_count(&ctx, &t, name).await?;
            if i == 0 {
                report.before.0 = n
            } else {
                report.before.1 = n
            }
        }
    }
    if *target == Target::All {
        let validator = Validator::new(p.clone())?;
        let seqs: HashMap<String, i64> = state
            .loaded_batches
            .iter()
            .map(|b| (b.batch_id.clone(), b.seq))
            .collect();
        report.silver = Some(
            silver::recompute(lake, p, &validator, &seqs, (None, None))
                .await?
                .out,
        );
    }
    for model in &p.gold {
        if matches!(target, Target::All) || *target == Target::Gold(model.name.clone()) {
            report.gold.push((model.name.clone(), 0, None));
        }
    }
    Ok(report)
}
