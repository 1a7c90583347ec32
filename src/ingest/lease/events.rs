//! Lease events: each commit to a lease table is one event (acquire, renew, release)
//! of one holder (one acquisition by a process, [`holder_id`]) at the next epoch, the
//! table's application transaction version.
//! Committing an event is exactly-once: an event whose commit was reported failed but
//! landed is recognised as the holder's own, never taken for another process's win.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deltalake::DeltaTable;
use deltalake::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use deltalake::arrow::datatypes::{DataType, Field, Schema};
use futures::TryStreamExt;

use super::{LEASE_APP, LEASES_DIR};
use crate::error::{MedallionError, Result};
use crate::schema::utc_timestamp_type;
use crate::storage::{self, AppendWriter, FileSize, Lakehouse};

/// This process's identity: `host:pid:random`.
pub(super) fn holder_id() -> String {
    format!(
        "{}:{}:{}",
        hostname(),
        std::process::id(),
        &uuid::Uuid::now_v7().simple().to_string()[20..]
    )
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is valid for 256 bytes; gethostname NUL-terminates within it or fails.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Whether the holder is a process of this host that no longer exists.
pub(super) fn holder_is_dead(holder: &str) -> bool {
    let mut parts = holder.split(':');
    let (Some(host), Some(pid)) = (
        parts.next(),
        parts.next().and_then(|p| p.parse::<i32>().ok()),
    ) else {
        return false;
    };
    if host != hostname() || pid <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks whether the process exists.
    let rc = unsafe { libc::kill(pid, 0) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

pub(super) fn lease_schema() -> Arc<Schema> {
    Arc::new(Schema::new(vec![
        Field::new("holder", DataType::Utf8, false),
        Field::new("action", DataType::Utf8, false),
        Field::new("epoch", DataType::Int64, false),
        Field::new("expires_at", utc_timestamp_type(), false),
    ]))
}

/// A lease event, as its commit records it.
pub(super) struct Event {
    pub(super) holder: String,
    pub(super) action: String,
    pub(super) expires_at: DateTime<Utc>,
    /// Its epoch (not recorded by events of medallion before 2026-12-07).
    pub(super) epoch: Option<i64>,
}

/// What became of a lease event [`commit_event`] was asked to commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Committed by this call.
    Committed,
    /// Committed by an earlier call of this holder that landed but was reported failed
    /// (a renewal retried at the same epoch): it expires a `ttl` after that call started.
    Earlier,
    /// Another process's event holds the epoch.
    Lost,
}

/// The newest `limit` commits, newest first, each with its lease event (`None` for a
/// commit that is not one: the table's creation).
pub(super) async fn newest_events(table: &DeltaTable, limit: usize) -> Result<Vec<Option<Event>>> {
    let infos: Vec<_> = table
        .history(Some(limit))
        .try_collect()
        .await
        .map_err(MedallionError::delta("read lease", LEASES_DIR))?;
    Ok(infos
        .iter()
        .map(|c| {
            let m = c.info.get("medallion")?;
            let text = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_string);
            let expires = text("expires_at").and_then(|t| DateTime::parse_from_rfc3339(&t).ok())?;
            Some(Event {
                holder: text("holder")?,
                action: text("action")?,
                expires_at: expires.with_timezone(&Utc),
                epoch: m.get("epoch").and_then(|v| v.as_i64()),
            })
        })
        .collect())
}

/// The newest lease event (commits that are not events, such as the table's creation,
/// passed over).
pub(super) async fn newest_event(table: &DeltaTable) -> Result<Option<Event>> {
    Ok(newest_events(table, 8).await?.into_iter().flatten().next())
}

/// The latest lease event: (epoch, holder, action, expires_at).
pub(super) async fn current(
    table: &DeltaTable,
) -> Result<(i64, Option<(String, String, DateTime<Utc>)>)> {
    let epoch = storage::txn_version(table, LEASE_APP, LEASES_DIR)
        .await?
        .unwrap_or(0);
    let event = newest_event(table)
        .await?
        .map(|e| (e.holder, e.action, e.expires_at));
    Ok((epoch, event))
}

/// Commit one lease event at `epoch` (see [`Outcome`]).
pub(super) async fn commit_event(
    lake: &Lakehouse,
    lease: &str,
    (holder, action): (&str, &str),
    epoch: i64,
    ttl: Duration,
) -> Result<Outcome> {
    let mut table = lake
        .open_or_create(lease, &lease_schema(), FileSize::Append)
        .await?;
    let at = storage::txn_version(&table, LEASE_APP, lease)
        .await?
        .unwrap_or(0);
    if at != epoch - 1 {
        // Already at `epoch`: by this very event when an earlier attempt of it landed
        // but was reported failed (a renewal retries the same epoch).
        return Ok(
            match at == epoch && is_ours(&table, (holder, action), epoch).await? {
                true => Outcome::Earlier,
                false => Outcome::Lost,
            },
        );
    }
    let expires = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or_default();
    let batch = RecordBatch::try_new(
        lease_schema(),
        vec![
            Arc::new(StringArray::from(vec![holder])),
            Arc::new(StringArray::from(vec![action])),
            Arc::new(Int64Array::from(vec![epoch])),
            Arc::new(
                TimestampMicrosecondArray::from(vec![expires.timestamp_micros()])
                    .with_timezone("UTC"),
            ),
        ],
    )
    .map_err(MedallionError::arrow("build lease row"))?;
    let mut writer = AppendWriter::new(&table, lease)?;
    writer.write(batch).await?;
    let props = storage::commit_info(
        "lease",
        serde_json::json!({ "holder": holder, "action": action, "epoch": epoch, "expires_at": expires.to_rfc3339(), "rows": 1 }),
    )
    .with_application_transaction(deltalake::kernel::Transaction::new(LEASE_APP, epoch));
    match writer.commit(&mut table, props, None).await {
        Ok(_) => Ok(Outcome::Committed),
        // A commit reported failed may have landed (an object-store write stored but
        // timed out, then retried onto the next version as a conflict; a failed
        // read-back): taken when the table is at `epoch` by this holder's event (this
        // call's, or a late-landing earlier attempt's: the renewer counts from its first).
        Err(_) if landed(&mut table, lease, (holder, action), epoch).await => {
            Ok(Outcome::Committed)
        }
        Err(e) if storage::is_conflict(&e) => Ok(Outcome::Lost),
        Err(e) => Err(e),
    }
}

/// Whether `table`, read again, is at `epoch` by `holder`'s `action`.
async fn landed(table: &mut DeltaTable, lease: &str, event: (&str, &str), epoch: i64) -> bool {
    if table.update_state().await.is_err() {
        return false;
    }
    match storage::txn_version(table, LEASE_APP, lease).await {
        Ok(Some(at)) if at == epoch => is_ours(table, event, epoch).await.unwrap_or(false),
        _ => false,
    }
}

/// Whether the newest lease event of `table` is `holder`'s `action` at `epoch` (a
/// holder's id is unique to one acquisition).
async fn is_ours(table: &DeltaTable, (holder, action): (&str, &str), epoch: i64) -> Result<bool> {
    let newest = newest_event(table).await?;
    Ok(newest.is_some_and(|e| e.holder == holder && e.action == action && e.epoch == Some(epoch)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_event_committed_again_is_the_holders_own_and_no_one_elses() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lakehouse::local(url::Url::from_directory_path(dir.path()).unwrap());
        let (lease, ttl) = ("_medallion/leases/t", Duration::from_secs(60));
        let commit = async |event: (&str, &str), epoch| {
            commit_event(&lake, lease, event, epoch, ttl).await.unwrap()
        };
        assert_eq!(commit(("a", "acquire"), 1).await, Outcome::Committed);
        // Its first attempt landed but was reported failed: committed again, it is
        // this holder's, from before.
        assert_eq!(commit(("a", "acquire"), 1).await, Outcome::Earlier);
        // Another holder, or another event of this one, did not win epoch 1; nor does
        // anyone win an epoch that is not the next.
        assert_eq!(commit(("b", "acquire"), 1).await, Outcome::Lost);
        assert_eq!(commit(("a", "renew"), 1).await, Outcome::Lost);
        assert_eq!(commit(("a", "renew"), 3).await, Outcome::Lost);
        // The next epoch: the holder's renewal is recognised at its own epoch only.
        assert_eq!(commit(("a", "renew"), 2).await, Outcome::Committed);
        assert_eq!(commit(("a", "renew"), 2).await, Outcome::Earlier);
        assert_eq!(commit(("a", "acquire"), 2).await, Outcome::Lost);
        let table = lake.open(lease).await.unwrap().unwrap();
        let (epoch, event) = current(&table).await.unwrap();
        assert_eq!(epoch, 2);
        assert_eq!(
            event.map(|e| (e.0, e.1)),
            Some(("a".into(), "renew".into()))
        );
        let events = newest_events(&table, 8).await.unwrap();
        assert_eq!(
            events.into_iter().flatten().count(),
            2,
            "one event per epoch"
        );
    }
}
