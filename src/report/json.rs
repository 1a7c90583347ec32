//! `run --json`: the run report as one JSON document with stable field names
//! (documented in the README, "Machine-readable output").

use serde_json::{Value, json};

use super::{BatchReport, FileReport, RunReport, StageTimes};
use crate::storage::UpsertMetrics;

impl RunReport {
    /// The whole report: outcome, totals, then every batch with its files.
    pub fn to_json(&self) -> Value {
        json!({
            "outcome": self.outcome(),
            "files_loaded": self.loaded(),
            "files_failed": self.failed(),
            "already_loaded": self.already_loaded,
            "rebuild_completed": self.rebuild_completed,
            "gold_rebuilt": self.rebuilt.iter().map(|m| json!({
                "model": m.model, "note": m.note, "rows": m.rows, "version": m.version,
            })).collect::<Vec<_>>(),
            "batches": self.batches.iter().map(batch).collect::<Vec<_>>(),
            "unreadable": self.unreadable.iter().map(file).collect::<Vec<_>>(),
            "duplicates": self.duplicates.iter().map(|(f, of)| json!({ "file": f, "of": of })).collect::<Vec<_>>(),
            "unstable": self.unstable,
            "stopped_at": self.stopped_at,
        })
    }
}

fn batch(b: &BatchReport) -> Value {
    let gold: serde_json::Map<String, Value> = b
        .gold
        .iter()
        .map(|(model, m)| (model.clone(), upsert(m)))
        .collect();
    json!({
        "batch_id": b.batch_id,
        "recovered": b.recovered,
        "committed": b.committed,
        "left_open": b.left_open,
        "error": b.error,
        "elapsed_s": b.elapsed.as_secs_f64(),
        "stages": stages(&b.stages),
        "bronze_version": b.bronze_version,
        "rejected_version": b.rejected_version,
        "silver": upsert(&b.silver),
        "superseded": b.superseded,
        "repeated": b.repeated,
        "gold": gold,
        "files": b.files.iter().map(file).collect::<Vec<_>>(),
    })
}

fn file(f: &FileReport) -> Value {
    json!({
        "file": f.file,
        "loaded": f.loaded(),
        "error": f.error,
        "new_version": f.new_version,
        "bytes": f.bytes,
        "rows_read": f.rows_read,
        "bronze_rows": f.bronze_rows,
        "accepted": f.silver_accepted,
        "rejected": f.rejected,
        "rejected_by_rule": f.rejected_by_rule,
        "warnings": f.warnings,
    })
}

fn upsert(m: &UpsertMetrics) -> Value {
    json!({ "inserted": m.inserted, "updated": m.updated, "deleted": m.deleted, "version": m.version })
}

fn stages(s: &StageTimes) -> Value {
    json!({
        "read_s": s.read.as_secs_f64(),
        "bronze_s": s.bronze.as_secs_f64(),
        "silver_s": s.silver.as_secs_f64(),
        "gold_s": s.gold.as_secs_f64(),
        "ledger_s": s.ledger.as_secs_f64(),
    })
}
