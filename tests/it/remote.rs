//! Workdirs whose lakehouse and landing zone live on an emulator (see `stores`): the
//! sample config moved onto a bucket, raw files put there, the lakehouse listed and read
//! back, and every output of the medallion processes kept for the secret check.

use std::path::Path;
use std::sync::Mutex;

use deltalake::logstore::object_store::{
    ObjectStore, ObjectStoreExt, PutPayload, path::Path as ObjectPath,
};
use futures::TryStreamExt;

use crate::stores::{Emulator, Kind, runtime};
use crate::workdir::{REPO, Workdir};

/// A workdir's lakehouse and raw zone on an emulator; collects every output of the
/// medallion processes it runs, for the secret check.
pub struct Remote {
    pub emulator: &'static Emulator,
    pub lake: String,
    lake_store: std::sync::Arc<dyn ObjectStore>,
    raw_store: std::sync::Arc<dyn ObjectStore>,
    outputs: Mutex<Vec<String>>,
}

impl Remote {
    pub fn put_raw(&self, name: &str, content: &[u8]) {
        let payload = PutPayload::from(content.to_vec());
        runtime()
            .block_on(self.raw_store.put(&ObjectPath::from(name), payload))
            .unwrap();
    }

    pub fn lake_files(&self) -> Vec<String> {
        list(self.lake_store.as_ref())
    }

    /// Every object of the landing zone, with its ETag.
    pub fn raw_files(&self) -> Vec<(String, Option<String>)> {
        runtime()
            .block_on(self.raw_store.list(None).try_collect::<Vec<_>>())
            .unwrap()
            .into_iter()
            .map(|m| (m.location.to_string(), m.e_tag))
            .collect()
    }

    pub fn read_lake(&self, relative: &str) -> Vec<u8> {
        runtime()
            .block_on(async {
                self.lake_store
                    .get(&ObjectPath::from(relative))
                    .await?
                    .bytes()
                    .await
            })
            .unwrap()
            .to_vec()
    }

    pub fn record_output(&self, stdout: &str, stderr: &str) {
        let mut outputs = self.outputs.lock().unwrap();
        outputs.push(stdout.to_string());
        outputs.push(stderr.to_string());
    }

    /// Every output recorded so far.
    pub fn outputs(&self) -> Vec<String> {
        self.outputs.lock().unwrap().clone()
    }
}

fn list(store: &dyn ObjectStore) -> Vec<String> {
    runtime()
        .block_on(store.list(None).try_collect::<Vec<_>>())
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect()
}

/// Every file under a local directory, by path relative to it.
pub fn local_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else if let Ok(rel) = path.strip_prefix(root) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

/// Where the landing zone goes in a store workdir.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Landing {
    /// `raw/` under the lakehouse, reached with the lakehouse's options.
    InsideLakehouse,
    /// A bucket or container of its own, with its own `storage_options`.
    OwnBucket,
}

impl Workdir {
    /// The sample config with the lakehouse (and raw zone) on an emulator.
    pub fn on_store(kind: Kind, landing: Landing) -> Workdir {
        let sample =
            std::fs::read_to_string(Path::new(REPO).join("examples/readings.yaml")).unwrap();
        Self::on_store_with(kind, landing, &sample)
    }

    /// `config` (a local-lakehouse config with `lakehouse:` and `raw_dir:` lines) moved
    /// onto an emulator.
    pub fn on_store_with(kind: Kind, landing: Landing, config: &str) -> Workdir {
        let emulator = Emulator::get(kind);
        let lake_bucket = emulator.new_bucket("lake");
        let lake_uri = emulator.uri(&lake_bucket, "prod");
        let (raw_location, raw_yaml) = match landing {
            Landing::InsideLakehouse => (
                emulator.location(&lake_bucket, "prod/raw"),
                "  raw_dir: raw\n".to_string(),
            ),
            Landing::OwnBucket => {
                let bucket = emulator.new_bucket("landing");
                let uri = emulator.uri(&bucket, "meters");
                let yaml = format!(
                    "  raw_dir: {uri}\n  storage_options:\n{}",
                    emulator.options_yaml("    ")
                );
                (emulator.location(&bucket, "meters"), yaml)
            }
        };
        let mut out = String::new();
        let mut raw_done = false;
        for line in config.lines() {
            if line.starts_with("lakehouse:") {
                out.push_str(&format!(
                    "lakehouse: {lake_uri}\nstorage_options:\n{}",
                    emulator.options_yaml("  ")
                ));
            } else if line.trim_start().starts_with("raw_dir:") {
                out.push_str(&raw_yaml);
                raw_done = true;
            } else {
                out.push_str(line);
                out.push('\n');
            }
        }
        if !raw_done {
            out = out.replacen("source:\n", &format!("source:\n{raw_yaml}"), 1);
        }
        let mut w = Workdir::with_config(&out);
        w.env.push((
            "MEDALLION_TEST_SECRET".into(),
            emulator.secret().to_string(),
        ));
        w.remote = Some(Remote {
            emulator,
            lake: lake_uri,
            lake_store: emulator.location(&lake_bucket, "prod").store().unwrap(),
            raw_store: raw_location.store().unwrap(),
            outputs: Mutex::new(Vec::new()),
        });
        w
    }
}
