//! The landing zone on a local disk or an object store: which files are there, and a
//! streaming reader for each. A file's identity is its path inside the zone; its size
//! and modification time (and, on object stores, its ETag) tell whether it is the
//! version that was listed. Objects are read as a stream of chunks (never downloaded
//! whole, never spooled to disk), with `If-Match` on the listed ETag, so a reader sees
//! the listed version or fails. Nothing is ever written or deleted here.

use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use deltalake::logstore::object_store::{
    self, GetOptions, ObjectStore, ObjectStoreExt, path::Path,
};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};

use crate::config::Pipeline;
use crate::error::{MedallionError, Result};
use crate::storage::Location;

/// A file found in the raw zone.
#[derive(Debug, Clone)]
pub struct RawFile {
    /// Path relative to the raw zone, with `/` separators: the file's identity.
    pub name: String,
    pub size: u64,
    pub modified: Option<DateTime<Utc>>,
    /// Where its bytes are.
    pub source: RawSource,
}

/// Where a raw file's bytes are. `Debug` shows where, never the store (its client
/// holds credentials).
#[derive(Clone)]
pub enum RawSource {
    Local(PathBuf),
    Store {
        store: Arc<dyn ObjectStore>,
        path: Path,
        etag: Option<String>,
        /// Shown in messages (`s3://landing/meters/a.csv`).
        url: String,
        /// Readers run on threads of their own and drive the download through this.
        runtime: tokio::runtime::Handle,
    },
}

impl std::fmt::Debug for RawSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RawSource::Local(path) => write!(f, "Local({})", path.display()),
            RawSource::Store { url, etag, .. } => write!(f, "Store({url}, etag {etag:?})"),
        }
    }
}

impl RawFile {
    /// A local file named `name`, as `meta` (its metadata) describes it.
    pub fn local(name: String, path: PathBuf, meta: &std::fs::Metadata) -> Self {
        RawFile {
            name,
            size: meta.len(),
            modified: meta.modified().ok().map(DateTime::<Utc>::from),
            source: RawSource::Local(path),
        }
    }

    /// Whether every read of the file is conditional on its listed version (an object
    /// with an ETag: a changed object fails the read instead of being read).
    pub fn reads_are_conditional(&self) -> bool {
        matches!(&self.source, RawSource::Store { etag: Some(_), .. })
    }

    /// The object's ETag as listed (`None` for local files).
    pub fn etag(&self) -> Option<&str> {
        match &self.source {
            RawSource::Store { etag, .. } => etag.as_deref(),
            RawSource::Local(_) => None,
        }
    }

    /// Where the file is, for messages.
    pub fn display_path(&self) -> PathBuf {
        match &self.source {
            RawSource::Local(path) => path.clone(),
            RawSource::Store { url, .. } => PathBuf::from(url),
        }
    }

    fn read_error(&self) -> impl Fn(std::io::Error) -> MedallionError + '_ {
        move |source| MedallionError::ReadFile {
            path: self.display_path(),
            source,
        }
    }

    /// A blocking reader of the file's bytes (call it off the async runtime's threads).
    pub fn open(&self) -> Result<Box<dyn Read + Send>> {
        match &self.source {
            RawSource::Local(path) => Ok(Box::new(
                std::fs::File::open(path).map_err(self.read_error())?,
            )),
            RawSource::Store {
                store,
                path,
                etag,
                runtime,
                ..
            } => {
                let options = GetOptions {
                    if_match: etag.clone(),
                    ..GetOptions::default()
                };
                let got = runtime
                    .block_on(store.get_opts(path, options))
                    .map_err(|e| self.read_error()(store_io_error(e)))?;
                Ok(Box::new(StreamRead {
                    runtime: runtime.clone(),
                    stream: got.into_stream(),
                    current: Bytes::new(),
                }))
            }
        }
    }

    /// Whether the file still is the version that was listed (blocking: a HEAD on an
    /// object store; a vanished object is a change).
    pub fn unchanged_since_listed(&self) -> Result<bool> {
        match &self.source {
            RawSource::Local(path) => {
                let meta = std::fs::metadata(path).map_err(self.read_error())?;
                let modified = meta.modified().ok().map(DateTime::<Utc>::from);
                Ok(meta.len() == self.size && modified == self.modified)
            }
            RawSource::Store {
                store,
                path,
                runtime,
                etag,
                ..
            } => match runtime.block_on(store.head(path)) {
                Ok(meta) if etag.is_some() => Ok(meta.e_tag == *etag),
                Ok(meta) => Ok(meta.size == self.size && Some(meta.last_modified) == self.modified),
                Err(object_store::Error::NotFound { .. }) => Ok(false),
                Err(e) => Err(self.read_error()(store_io_error(e))),
            },
        }
    }
}

/// An object store error as I/O: a failed `If-Match` says the object changed.
fn store_io_error(e: object_store::Error) -> std::io::Error {
    match e {
        object_store::Error::Precondition { .. } => std::io::Error::other(
            "the object changed since it was listed (its ETag no longer matches)",
        ),
        object_store::Error::NotFound { .. } => {
            std::io::Error::new(std::io::ErrorKind::NotFound, "the object no longer exists")
        }
        e => std::io::Error::other(e.to_string()),
    }
}

/// An object's byte stream as a blocking reader.
struct StreamRead {
    runtime: tokio::runtime::Handle,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    current: Bytes,
}

impl Read for StreamRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.runtime.block_on(self.stream.next()) {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => return Err(store_io_error(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Files in the raw zone matching the source pattern, sorted by name.
pub async fn discover(p: &Pipeline) -> Result<Vec<RawFile>> {
    let zone = &p.source.raw_zone;
    let mut files = if zone.is_local() {
        let root = zone.url.to_file_path().map_err(|()| {
            MedallionError::Usage(format!(
                "the raw zone {} is not a local directory",
                zone.url
            ))
        })?;
        super::local::discover(&root)?
    } else {
        discover_in_store(zone).await?
    };
    files.retain(|f| {
        let file_name = f.name.rsplit('/').next().unwrap_or(&f.name);
        !file_name.starts_with('.') && matches_pattern(&p.source.pattern, &f.name, file_name)
    });
    files.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(files)
}

async fn discover_in_store(zone: &Location) -> Result<Vec<RawFile>> {
    let store = zone.store()?;
    let runtime = tokio::runtime::Handle::current();
    let listed: Vec<_> = store
        .list(None)
        .try_collect()
        .await
        .map_err(MedallionError::store("list the raw zone", &zone.url))?;
    // A zero-byte object named like a folder that holds other objects is a "folder"
    // marker (the S3 console makes them), not a file.
    let folders: std::collections::HashSet<String> = listed
        .iter()
        .filter_map(|m| {
            m.location
                .as_ref()
                .rsplit_once('/')
                .map(|(dir, _)| dir.to_string())
        })
        .collect();
    Ok(listed
        .into_iter()
        .filter(|meta| !(meta.size == 0 && folders.contains(meta.location.as_ref())))
        .map(|meta| RawFile {
            name: meta.location.to_string(),
            size: meta.size,
            modified: Some(meta.last_modified),
            source: RawSource::Store {
                url: format!("{}{}", zone.url, meta.location),
                store: store.clone(),
                path: meta.location,
                etag: meta.e_tag,
                runtime: runtime.clone(),
            },
        })
        .collect())
}

/// A file matches when its path or name matches the pattern, or when it is a `.gz`
/// whose name without `.gz` does (compressed exports are accepted).
fn matches_pattern(pattern: &glob::Pattern, path: &str, name: &str) -> bool {
    let plain = |n: &str| pattern.matches(n);
    plain(path)
        || plain(name)
        || path.strip_suffix(".gz").is_some_and(plain)
        || name.strip_suffix(".gz").is_some_and(plain)
}
