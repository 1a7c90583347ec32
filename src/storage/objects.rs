//! Small objects of medallion's own under the lakehouse root (`_medallion/*.json`), and
//! the cheapest question a table's log answers: has anything been committed after a
//! version? One LIST, starting after that version's entry, without opening the table.

use deltalake::logstore::object_store::{self, ObjectStoreExt, PutPayload, path::Path};
use futures::StreamExt;

use super::Lakehouse;
use crate::error::{MedallionError, Result};

impl Lakehouse {
    /// The bytes of a small object at `relative` under the root, `None` if there is none.
    pub async fn read_small(&self, relative: &str) -> Result<Option<bytes::Bytes>> {
        let store = self.root().store()?;
        let failed = MedallionError::store("read", &self.root().url);
        match store.get(&Path::from(relative)).await {
            Ok(got) => Ok(Some(got.bytes().await.map_err(failed)?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failed(e)),
        }
    }

    /// Write (or replace, atomically) a small object at `relative` under the root.
    pub async fn write_small(&self, relative: &str, bytes: Vec<u8>) -> Result<()> {
        let store = self.root().store()?;
        store
            .put(&Path::from(relative), PutPayload::from(bytes))
            .await
            .map_err(MedallionError::store("write", &self.root().url))?;
        Ok(())
    }

    /// Whether the table at `relative` has a log entry (commit or checkpoint) of a
    /// version after `version`. Log entries are never removed past the newest, so a
    /// later commit is always seen.
    pub async fn commits_after(&self, relative: &str, version: i64) -> Result<bool> {
        let store = self.root().store()?;
        let log = format!("{}/_delta_log", relative.trim_matches('/'));
        let offset = Path::from(format!("{log}/{version:020}.json"));
        let mut listed = store.list_with_offset(Some(&Path::from(log)), &offset);
        while let Some(meta) = listed.next().await {
            let meta = meta.map_err(MedallionError::store("list", &self.root().url))?;
            if log_entry_version(meta.location.filename()).is_some_and(|v| v > version) {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

/// The version of a log entry's file name (`00000000000000000012.json`,
/// `00000000000000000012.checkpoint.parquet`); `None` for other files (`_last_checkpoint`).
fn log_entry_version(name: Option<&str>) -> Option<i64> {
    let digits = name?.split('.').next()?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_entries_have_versions_and_other_files_do_not() {
        assert_eq!(
            log_entry_version(Some("00000000000000000012.json")),
            Some(12)
        );
        assert_eq!(
            log_entry_version(Some("00000000000000000010.checkpoint.parquet")),
            Some(10)
        );
        assert_eq!(log_entry_version(Some("_last_checkpoint")), None);
        assert_eq!(log_entry_version(Some("12.json")), None);
        assert_eq!(log_entry_version(None), None);
    }

    #[tokio::test]
    async fn later_commits_are_seen_and_small_objects_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lakehouse::local(url::Url::from_directory_path(dir.path()).unwrap());
        assert!(!lake.commits_after("_medallion/lease", 0).await.unwrap());
        let log = dir.path().join("_medallion/lease/_delta_log");
        std::fs::create_dir_all(&log).unwrap();
        for name in [
            "00000000000000000000.json",
            "00000000000000000001.json",
            "_last_checkpoint",
        ] {
            std::fs::write(log.join(name), "{}").unwrap();
        }
        assert!(lake.commits_after("_medallion/lease", 0).await.unwrap());
        assert!(!lake.commits_after("_medallion/lease", 1).await.unwrap());

        assert_eq!(lake.read_small("_medallion/mark.json").await.unwrap(), None);
        lake.write_small("_medallion/mark.json", b"one".to_vec())
            .await
            .unwrap();
        lake.write_small("_medallion/mark.json", b"two".to_vec())
            .await
            .unwrap();
        let read = lake.read_small("_medallion/mark.json").await.unwrap();
        assert_eq!(read.as_deref(), Some(&b"two"[..]));
    }
}
