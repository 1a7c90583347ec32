//! Azure Blob listings that start after a key. object_store 0.13 sends Azure's
//! `startFrom` parameter for `list_with_offset` and trusts the service to skip earlier
//! names; delta-rs and delta-kernel find a table's latest commit that way. A service
//! that ignores `startFrom` (Azurite 3.35, the emulator; OneLake, object_store issue
//! #695) then returns the whole log, and every commit after the first fails with
//! "Invalid table version". medallion's Azure stores therefore also drop names at or
//! before the offset themselves: the same answer where `startFrom` works, a correct one
//! where it does not.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use deltalake::DeltaResult;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};
use deltalake::logstore::{ObjectStoreFactory, StorageConfig, object_store_factories};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use url::Url;

/// The URL schemes deltalake's Azure support registers.
const AZURE_SCHEMES: [&str; 5] = ["az", "adl", "azure", "abfs", "abfss"];

/// Wrap deltalake's Azure store factories (once per process).
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let registry = object_store_factories();
        for scheme in AZURE_SCHEMES {
            let Ok(url) = Url::parse(&format!("{scheme}://")) else {
                continue;
            };
            let inner = registry.get(&url).map(|f| f.value().clone());
            if let Some(inner) = inner {
                registry.insert(url, Arc::new(OffsetFilteringFactory(inner)));
            }
        }
    });
}

struct OffsetFilteringFactory(Arc<dyn ObjectStoreFactory>);

impl ObjectStoreFactory for OffsetFilteringFactory {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(Arc<dyn ObjectStore>, Path)> {
        let (store, prefix) = self.0.parse_url_opts(url, config)?;
        Ok((Arc::new(OffsetFiltering(store)), prefix))
    }
}

/// A store whose `list_with_offset` never returns a name at or before the offset.
struct OffsetFiltering(Arc<dyn ObjectStore>);

impl std::fmt::Display for OffsetFiltering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Shows the store's `Display` (its URL), not its `Debug` (its client and credentials).
impl std::fmt::Debug for OffsetFiltering {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OffsetFiltering({})", self.0)
    }
}

#[async_trait::async_trait]
impl ObjectStore for OffsetFiltering {
    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        let offset = offset.clone();
        self.0
            .list_with_offset(prefix, &offset)
            .try_filter(move |m| futures::future::ready(m.location > offset))
            .boxed()
    }

    async fn put_opts(&self, p: &Path, payload: PutPayload, o: PutOptions) -> Result<PutResult> {
        self.0.put_opts(p, payload, o).await
    }
    async fn put_multipart_opts(
        &self,
        p: &Path,
        o: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(p, o).await
    }
    async fn get_opts(&self, p: &Path, o: GetOptions) -> Result<GetResult> {
        self.0.get_opts(p, o).await
    }
    async fn get_ranges(&self, p: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.0.get_ranges(p, ranges).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.0.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
        self.0.copy_opts(from, to, o).await
    }
    async fn rename_opts(&self, from: &Path, to: &Path, o: RenameOptions) -> Result<()> {
        self.0.rename_opts(from, to, o).await
    }
}

#[cfg(test)]
mod tests {
    use deltalake::logstore::object_store::ObjectStoreExt;

    use super::*;
    use crate::storage::test_store::Misbehaving;

    #[tokio::test]
    async fn names_at_or_before_the_offset_are_dropped() {
        let inner = Misbehaving::ignoring_offsets();
        for v in 0..3 {
            let key = Path::from(format!("_delta_log/{v:020}.json"));
            inner.put(&key, PutPayload::from("{}")).await.unwrap();
        }
        let offset = Path::from(format!("_delta_log/{:020}.json", 1));
        let all: Vec<ObjectMeta> = inner
            .list_with_offset(Some(&Path::from("_delta_log")), &offset)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(all.len(), 3, "the inner store ignores the offset");
        let store = OffsetFiltering(Arc::new(inner));
        let names: Vec<String> = store
            .list_with_offset(Some(&Path::from("_delta_log")), &offset)
            .map_ok(|m| m.location.to_string())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(names, vec![format!("_delta_log/{:020}.json", 2)]);
    }
}
