//! Model changes. Each gold table carries the fingerprint of the model it was built
//! from ([`super::FINGERPRINT_PROPERTY`]: normalised SQL, keys, output schema). Before
//! a run loads any batch, every model whose table has another fingerprint (or none)
//! is rebuilt from silver in one overwrite commit that also adopts the model's new
//! schema, so columns may be added, removed or retyped; the old output stays reachable
//! with time travel. A model added to a lakehouse whose silver exists is built at once.
//! Gold tables of models no longer in the configuration are left alone.

use futures::StreamExt;

use super::{FINGERPRINT_PROPERTY, model_sql};
use crate::config::{GoldModel, Pipeline};
use crate::error::{MedallionError, Result};
use crate::plan::Maintenance;
use crate::schema;
use crate::storage::{self, AppendWriter, FileSize, Lakehouse};

/// Why a gold table is (re)built before any batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The model's SQL, keys or output schema changed since the table was built.
    Changed,
    /// The table predates fingerprints: rebuilt once so it surely matches the model.
    Unfingerprinted,
    /// The model is new and silver already has rows.
    Added,
    /// `medallion rebuild` asked for it.
    Requested,
}

impl Reason {
    pub fn note(self) -> &'static str {
        match self {
            Reason::Changed => "model changed: rebuilt",
            Reason::Unfingerprinted => "model fingerprint recorded: rebuilt",
            Reason::Added => "model added: built from silver",
            Reason::Requested => "rebuilt from silver (medallion rebuild)",
        }
    }
}

/// A model whose gold table must be (re)built, and why.
pub async fn stale(
    lake: &Lakehouse,
    model: &GoldModel,
    silver_exists: bool,
) -> Result<Option<Reason>> {
    let relative = model.table();
    let Some(table) = lake.open(&relative).await? else {
        return Ok(silver_exists.then_some(Reason::Added));
    };
    Ok(
        match storage::table_property(&table, &relative, FINGERPRINT_PROPERTY)? {
            Some(f) if f == model.fingerprint => None,
            Some(_) => Some(Reason::Changed),
            None => Some(Reason::Unfingerprinted),
        },
    )
}

/// Models whose gold tables are stale, with the reason.
pub async fn stale_models<'p>(
    lake: &Lakehouse,
    p: &'p Pipeline,
) -> Result<Vec<(&'p GoldModel, Reason)>> {
    // A silver table only just created (version 0, no rows yet) has nothing to build from.
    let mut filled = Vec::new();
    for source in &p.sources {
        let silver = source.tables().silver;
        if lake
            .open(&silver)
            .await?
            .is_some_and(|t| t.version().unwrap_or(0) > 0)
        {
            filled.push(source.name.as_str());
        }
    }
    let mut out = Vec::new();
    for model in &p.gold {
        let silver_exists = model.sources.iter().any(|s| filled.contains(&s.as_str()));
        if let Some(reason) = stale(lake, model, silver_exists).await? {
            out.push((model, reason));
        }
    }
    Ok(out)
}

/// Rebuild one model's gold table from the current silver; returns (version, rows).
/// With `txn`, the commit carries that application transaction.
pub async fn rebuild(
    lake: &Lakehouse,
    p: &Pipeline,
    model: &GoldModel,
    reason: Reason,
    txn: Option<(&str, i64)>,
) -> Result<(Option<i64>, u64)> {
    let relative = model.table();
    let gold_schema = schema::gold_schema(&model.schema);
    let mut table = match lake.open(&relative).await? {
        Some(t) => t,
        // Created without the fingerprint: only the commit that fills the table records
        // it, so a process killed in between leaves a table the next run rebuilds.
        None => {
            lake.open_or_create(&relative, &gold_schema, FileSize::Upsert)
                .await?
        }
    };
    let ctx = storage::session();
    super::register_silver(&ctx, lake, p, None).await?;
    let step = || MedallionError::sql(format!("rebuild gold model {}", model.name));
    let df = ctx.sql(model_sql(model)).await.map_err(step())?;
    let mut writer = AppendWriter::replacing(
        &table,
        &relative,
        &gold_schema,
        &[(FINGERPRINT_PROPERTY, &model.fingerprint)],
    )?;
    if model.maintenance == Maintenance::ByKeys {
        // Unique by construction (the plan's keys cover its groups): streamed.
        let mut rows = df.execute_stream().await.map_err(step())?;
        while let Some(batch) = rows.next().await {
            writer.write(batch.map_err(step())?).await?;
        }
    } else {
        // Recomputed in memory on every batch anyway; its keys are checked first.
        for batch in super::full::collect_checked(&ctx, model, df).await? {
            writer.write(batch).await?;
        }
    }
    let n = writer.rows();
    let props = storage::commit_info(
        "gold_rebuild",
        serde_json::json!({ "model": model.name, "rows": n, "note": reason.note() }),
    );
    let version = writer.commit(&mut table, props, txn).await?.version();
    Ok((version, n))
}
