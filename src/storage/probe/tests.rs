use std::sync::Arc;

use deltalake::logstore::object_store::memory::InMemory;
use deltalake::logstore::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    PutMultipartOptions, PutResult, Result as StoreResult,
};
use futures::stream::BoxStream;

use super::*;

/// A store that treats every conditional create as an overwrite, like an S3-compatible
/// server that ignores `If-None-Match`.
#[derive(Debug)]
struct IgnoresConditions(InMemory);

impl std::fmt::Display for IgnoresConditions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IgnoresConditions")
    }
}

#[async_trait::async_trait]
impl ObjectStore for IgnoresConditions {
    async fn put_opts(
        &self,
        p: &Path,
        payload: PutPayload,
        o: PutOptions,
    ) -> StoreResult<PutResult> {
        let o = PutOptions {
            mode: PutMode::Overwrite,
            ..o
        };
        self.0.put_opts(p, payload, o).await
    }
    async fn put_multipart_opts(
        &self,
        p: &Path,
        o: PutMultipartOptions,
    ) -> StoreResult<Box<dyn MultipartUpload>> {
        self.0.put_multipart_opts(p, o).await
    }
    async fn get_opts(&self, p: &Path, o: GetOptions) -> StoreResult<GetResult> {
        self.0.get_opts(p, o).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, StoreResult<Path>>,
    ) -> BoxStream<'static, StoreResult<Path>> {
        self.0.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, StoreResult<ObjectMeta>> {
        self.0.list(prefix)
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> StoreResult<ListResult> {
        self.0.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> StoreResult<()> {
        self.0.copy_opts(from, to, o).await
    }
}

#[tokio::test]
async fn a_store_that_refuses_the_second_create_passes_and_is_remembered() {
    let store = Arc::new(InMemory::new());
    probe(store.as_ref(), "memory://lake/").await.unwrap();
    let marker = store.get(&Path::from(PROBE_MARKER)).await.unwrap();
    let text = String::from_utf8(marker.bytes().await.unwrap().to_vec()).unwrap();
    assert!(text.contains("was refused"), "{text}");
    // Remembered: the probe keys are gone, only the marker stays.
    let keys: Vec<String> = futures::TryStreamExt::try_collect::<Vec<_>>(store.list(None))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    assert_eq!(keys, vec![PROBE_MARKER.to_string()]);
    probe(store.as_ref(), "memory://lake/").await.unwrap();
}

#[tokio::test]
async fn a_store_that_ignores_conditions_is_refused_every_time() {
    let store = IgnoresConditions(InMemory::new());
    for _ in 0..2 {
        let err = probe(&store, "s3://lake/").await.unwrap_err();
        assert!(matches!(err, MedallionError::UnsafeStore { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("s3://lake/"), "{text}");
        assert!(text.contains("second conditional create"), "{text}");
        assert_eq!(err.exit_code(), 2);
        assert!(store.head(&Path::from(PROBE_MARKER)).await.is_err());
    }
}
