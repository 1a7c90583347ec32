//! Commit safety on object stores. Delta commits are conditional creates of
//! `_delta_log/<version>.json` (`If-None-Match: *` on S3, the same on Azure and GCS): of
//! two writers committing the same version, the store must refuse the second. A store
//! that ignores the condition silently keeps only one of them, and the other run's data
//! is lost without an error. So before the first write to a lakehouse on an object
//! store, medallion creates a probe key twice and requires the second create to be
//! refused; the outcome is remembered in the lakehouse (`_medallion/store_probe.json`)
//! so later runs skip the probe. A store that fails is probed again on every run (until
//! it is fixed) and never written to. Local directories need no probe: delta-rs commits
//! there with a no-clobber rename.

use deltalake::logstore::object_store::{
    self, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, path::Path,
};

use super::location::Location;
use crate::error::{MedallionError, Result};

/// Where the probe's outcome is remembered, relative to the lakehouse root.
pub const PROBE_MARKER: &str = "_medallion/store_probe.json";

/// Refuse to go on unless the lakehouse's store refuses a second conditional create.
pub async fn ensure_conditional_creates(root: &Location) -> Result<()> {
    if root.is_local() {
        return Ok(());
    }
    let store = root.store()?;
    probe(store.as_ref(), root.url.as_str()).await
}

fn create() -> PutOptions {
    PutOptions {
        mode: PutMode::Create,
        ..PutOptions::default()
    }
}

/// The probe itself, on the store rooted at the lakehouse (`location` names it).
pub async fn probe(store: &dyn ObjectStore, location: &str) -> Result<()> {
    let failed = |step: &'static str| MedallionError::store::<object_store::Error>(step, location);
    let marker = Path::from(PROBE_MARKER);
    match store.head(&marker).await {
        Ok(_) => return Ok(()),
        Err(object_store::Error::NotFound { .. }) => {}
        Err(e) => return Err(failed("read the store probe of")(e)),
    }
    let key = Path::from(format!(
        "_medallion/probe/{}",
        uuid::Uuid::now_v7().simple()
    ));
    match store
        .put_opts(&key, PutPayload::from("first"), create())
        .await
    {
        Ok(_) => {}
        Err(object_store::Error::NotImplemented { .. }) => {
            return Err(MedallionError::UnsafeStore {
                location: location.to_string(),
                found: "conditional creates are disabled for it".into(),
            });
        }
        Err(e) => return Err(failed("write a probe key to")(e)),
    }
    let second = store
        .put_opts(&key, PutPayload::from("second"), create())
        .await;
    // The probe key is medallion's own: removing it is housekeeping, not a must.
    if let Err(e) = store.delete(&key).await {
        tracing::debug!("cannot remove the store probe key {key}: {e}");
    }
    match second {
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => {}
        Ok(_) => {
            return Err(MedallionError::UnsafeStore {
                location: location.to_string(),
                found: "a second conditional create of the same key succeeded".into(),
            });
        }
        Err(e) => return Err(failed("probe conditional creates on")(e)),
    }
    remember(store, &marker, location).await
}

/// Keep the probe's outcome in the lakehouse, so later runs do not probe again.
async fn remember(store: &dyn ObjectStore, marker: &Path, location: &str) -> Result<()> {
    let outcome = serde_json::json!({
        "conditional_create": "a second create of the same key was refused",
        "checked_at": chrono::Utc::now().to_rfc3339(),
        "medallion_version": env!("CARGO_PKG_VERSION"),
    });
    match store
        .put_opts(marker, PutPayload::from(outcome.to_string()), create())
        .await
    {
        // A concurrent run remembered it first: the same outcome.
        Ok(_) | Err(object_store::Error::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(MedallionError::store(
            "remember the store probe in",
            location,
        )(e)),
    }
}

#[cfg(test)]
mod tests;
