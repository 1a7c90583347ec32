//! The lakehouse: its root, the tables under it, and the tables this process has
//! opened. Opening a table again reads only the commits since it was last seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel;
use deltalake::kernel::{StructField, StructType};
use url::Url;

use super::{CHECKPOINT_INTERVAL, FileSize, Location, StorageOptions, commit_info, probe};
use crate::error::{MedallionError, Result};

/// The lakehouse root and the URLs of the tables under it.
#[derive(Clone)]
pub struct Lakehouse {
    root: Location,
    /// The tables this process opened, as last seen: opening one again reads only the
    /// commits since (one LIST when there are none), not its checkpoint and log again,
    /// and reuses its store client. Shared by clones; `None` for [`Self::uncached`].
    opened: Option<Arc<Mutex<HashMap<String, DeltaTable>>>>,
}

impl std::fmt::Debug for Lakehouse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lakehouse")
            .field("root", &self.root)
            .finish()
    }
}

impl Lakehouse {
    pub fn new(root: Location) -> Self {
        Lakehouse {
            root,
            opened: Some(Arc::default()),
        }
    }

    /// The same lakehouse without the cache of opened tables, for code that runs on a
    /// runtime of its own (a store client belongs to the runtime it was made on).
    pub fn uncached(&self) -> Self {
        Lakehouse {
            root: self.root.clone(),
            opened: None,
        }
    }

    fn cached(&self, relative: &str) -> Option<DeltaTable> {
        let opened = self
            .opened
            .as_ref()?
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        opened.get(relative).cloned()
    }

    /// Remember `table` as the newest state of `relative` this process has seen (after a
    /// commit, so that the next open need not read it back).
    pub fn keep(&self, relative: &str, table: &DeltaTable) {
        if let Some(opened) = &self.opened {
            let mut opened = opened.lock().unwrap_or_else(|p| p.into_inner());
            let newer = opened
                .get(relative)
                .is_none_or(|t| t.version() <= table.version());
            if newer {
                opened.insert(relative.to_string(), table.clone());
            }
        }
    }

    /// A lakehouse in a local directory (tests and tools).
    pub fn local(root: Url) -> Self {
        Lakehouse::new(Location::new(root, StorageOptions::default()))
    }

    /// The root and the options that reach it.
    pub fn root(&self) -> &Location {
        &self.root
    }

    /// URL of a table at `relative` (e.g. `silver/readings`), as a directory URL.
    pub fn table_url(&self, relative: &str) -> Result<Url> {
        Ok(self.root.join(relative)?.url)
    }

    /// Refuse to write to a store that does not honour conditional creates (probed once
    /// per lakehouse, see [`probe`]).
    pub async fn ensure_writable(&self) -> Result<()> {
        probe::ensure_conditional_creates(&self.root).await
    }

    /// Names of the tables under a zone directory (`gold` → `daily_usage`, ...), sorted.
    pub async fn tables_in(&self, zone: &str) -> Result<Vec<String>> {
        use deltalake::logstore::object_store::path::Path;
        let zone_dir = self.root.join(zone)?;
        if zone_dir.is_local() && zone_dir.url.to_file_path().is_ok_and(|d| !d.is_dir()) {
            return Ok(Vec::new());
        }
        let store = zone_dir.store()?;
        let listed = store
            .list_with_delimiter(None)
            .await
            .map_err(MedallionError::store("list", &zone_dir.url))?;
        let mut names = Vec::new();
        for dir in listed.common_prefixes {
            let Some(name) = dir.filename().map(str::to_string) else {
                continue;
            };
            let log = Path::from(format!("{name}/_delta_log"));
            let mut entries = store.list(Some(&log));
            match futures::StreamExt::next(&mut entries).await {
                Some(Ok(_)) => names.push(name),
                None => {}
                Some(Err(e)) => return Err(MedallionError::store("list", &zone_dir.url)(e)),
            }
        }
        names.sort();
        Ok(names)
    }

    /// A handle on the table at `relative`, nothing read yet (`step` names the caller).
    fn unloaded(&self, relative: &str, step: &'static str) -> Result<DeltaTable> {
        let url = self.table_url(relative)?;
        self.root
            .table_builder(url)
            .and_then(|b| b.build())
            .map_err(MedallionError::delta(step, relative))
    }

    /// Open the table at `relative` at its newest version, or `None` when no table
    /// exists there yet.
    pub async fn open(&self, relative: &str) -> Result<Option<DeltaTable>> {
        if let Some(mut table) = self.cached(relative) {
            table
                .load()
                .await
                .map_err(MedallionError::delta("open", relative))?;
            self.keep(relative, &table);
            return Ok(Some(table));
        }
        let mut table = self.unloaded(relative, "open")?;
        let exists = table
            .verify_deltatable_existence()
            .await
            .map_err(MedallionError::delta("open", relative))?;
        if !exists {
            return Ok(None);
        }
        table
            .load()
            .await
            .map_err(MedallionError::delta("open", relative))?;
        self.keep(relative, &table);
        Ok(Some(table))
    }

    /// Open the table at `relative`, creating it with `schema` when it does not exist.
    pub async fn open_or_create(
        &self,
        relative: &str,
        schema: &SchemaRef,
        file_size: FileSize,
    ) -> Result<DeltaTable> {
        self.open_or_create_with(relative, schema, file_size, &[])
            .await
    }

    /// [`Self::open_or_create`], creating the table with the extra table properties `config`.
    pub async fn open_or_create_with(
        &self,
        relative: &str,
        schema: &SchemaRef,
        file_size: FileSize,
        config: &[(&str, &str)],
    ) -> Result<DeltaTable> {
        if let Some(t) = self.open(relative).await? {
            return Ok(t);
        }
        let url = self.table_url(relative)?;
        if url.scheme() == "file"
            && let Ok(path) = url.to_file_path()
        {
            std::fs::create_dir_all(&path)
                .map_err(|source| MedallionError::ReadFile { path, source })?;
        }
        let kernel: StructType = schema
            .as_ref()
            .try_into_kernel()
            .map_err(|e| MedallionError::delta("create", relative)(e.into()))?;
        let columns: Vec<StructField> = kernel.fields().cloned().collect();
        let table = self.unloaded(relative, "create")?;
        let created = table
            .create()
            .with_columns(columns)
            .with_table_name(relative.replace('/', "."))
            .with_configuration_property(
                deltalake::TableProperty::TargetFileSize,
                Some(file_size.bytes().to_string()),
            )
            // Opening a table reads its last checkpoint and every commit after it: on an
            // object store each is a request (BENCHMARKS.md counts them), so checkpoint
            // every 10 commits (Spark's default) instead of delta-rs' 100.
            .with_configuration_property(
                deltalake::TableProperty::CheckpointInterval,
                Some(CHECKPOINT_INTERVAL.to_string()),
            )
            .with_configuration(config.iter().map(|(k, v)| (*k, Some(*v))))
            // medallion's own `medallion.*` properties are not Delta keys.
            .with_raise_if_key_not_exists(false)
            // No retries: when two processes create a table at once, delta-rs (1.1.3)
            // commits the loser's CREATE as the next version — a second table id and
            // metadata over the winner's commits. Failing instead lets us open theirs.
            .with_commit_properties(
                commit_info("create", serde_json::json!({ "table": relative })).with_max_retries(0),
            )
            .await;
        match created {
            Ok(t) => {
                self.keep(relative, &t);
                Ok(t)
            }
            // Another process created it first: use theirs.
            Err(_) if self.open(relative).await?.is_some() => self
                .open(relative)
                .await?
                .ok_or_else(|| MedallionError::Internal(format!("table {relative} vanished"))),
            Err(e) => Err(MedallionError::delta("create", relative)(e)),
        }
    }
}
