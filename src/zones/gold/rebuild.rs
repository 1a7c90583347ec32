//! Model changes. Each gold table carries the fingerprint of the model it was built
//! from ([`super::FINGERPRINT_PROPERTY`]: normalised SQL, keys, output schema). Before
//! a run loads any batch, every model whose table has another fingerprint (or none)
//! is rebuilt from silver in one overwrite commit that also adopts the model's new
//! schema, so columns may be added, removed or retyped; the old output stays reachable
//! with time travel. A model added to a lakehouse whose silver exists is built at once.
//! Gold tables of models no longer in the configuration are left alone.

use futures::StreamExt;

use super::{FINGERPRINT_PROPERTY, model_sql, table_path};
use crate::config::{GoldModel, Pipeline};
use crate::error::{MedallionError, Result};
use crate::schema;
use crate::storage::{self, AppendWriter, Lakehouse};
use crate::zones::Lineage;

/// Why a gold table is (re)built before any batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The model's SQL, keys or output schema changed since the table was built.
    Changed,
    /// The table predates fingerprints: rebuilt once so it surely matches the model.
    Unfingerprinted,
    /// The model is new and silver already has rows.
    Added,
}

impl Reason {
    pub fn note(self) -> &'static str {
        match self {
            Reason::Changed => "model changed: rebuilt",
            Reason::Unfingerprinted => "model fingerprint recorded: rebuilt",
            Reason::Added => "model added: built from silver",
        }
    }
}

/// A model whose gold table must be (re)built, and why.
pub async fn stale(
    lake: &Lakehouse,
    model: &GoldModel,
    silver_exists: bool,
) -> Result<Option<Reason>> {
    let relative = table_path(model);
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
    let silver = format!("silver/{}", p.source.name);
    let silver_exists = lake.open(&silver).await?.is_some();
    let mut out = Vec::new();
    for model in &p.gold {
        if let Some(reason) = stale(lake, model, silver_exists).await? {
            out.push((model, reason));
        }
    }
    Ok(out)
}

/// Rebuild one model's gold table from the current silver; returns (version, rows).
pub async fn rebuild(
    lake: &Lakehouse,
    p: &Pipeline,
    model: &GoldModel,
    reason: Reason,
) -> Result<(Option<i64>, u64)> {
    let silver_path = format!("silver/{}", p.source.name);
    let silver = lake
        .open(&silver_path)
        .await?
        .ok_or_else(|| MedallionError::Internal(format!("{silver_path} vanished")))?;
    if reason == Reason::Added {
        let lineage = Lineage {
            source_file: String::new(),
            batch_id: String::new(),
            received_at: chrono::Utc::now(),
        };
        let g = super::refresh(lake, p, model, &silver, None, &lineage, None).await?;
        return Ok((g.changes.version, g.changes.inserted));
    }
    let relative = table_path(model);
    let mut table = lake
        .open(&relative)
        .await?
        .ok_or_else(|| MedallionError::Internal(format!("{relative} vanished")))?;
    let ctx = storage::session();
    super::register_silver(&ctx, p, &silver).await?;
    let step = || MedallionError::sql(format!("rebuild gold model {}", model.name));
    let mut rows = ctx
        .sql(model_sql(model))
        .await
        .map_err(step())?
        .execute_stream()
        .await
        .map_err(step())?;
    let gold_schema = schema::gold_schema(&model.schema);
    let mut writer = AppendWriter::replacing(
        &table,
        &relative,
        &gold_schema,
        &[(FINGERPRINT_PROPERTY, &model.fingerprint)],
    )?;
    while let Some(batch) = rows.next().await {
        let batch = batch.map_err(step())?;
        let batch = deltalake::arrow::record_batch::RecordBatch::try_new(
            gold_schema.clone(),
            batch.columns().to_vec(),
        )
        .map_err(MedallionError::arrow("rebuild gold rows"))?;
        writer.write(batch).await?;
    }
    let n = writer.rows();
    let props = storage::commit_info(
        "gold_rebuild",
        serde_json::json!({ "model": model.name, "rows": n, "note": reason.note() }),
    );
    let version = writer.commit(&mut table, props, None).await?.version();
    Ok((version, n))
}
