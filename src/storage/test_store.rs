//! A misbehaving in-memory object store for unit tests: it can treat conditional
//! creates as overwrites (like an S3-compatible server that ignores `If-None-Match`)
//! and ignore the offset of a listing (like Azurite, which ignores `startFrom`).

use deltalake::logstore::object_store::memory::InMemory;
use deltalake::logstore::object_store::path::Path;
use deltalake::logstore::object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMode, PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};
use futures::stream::BoxStream;

#[derive(Debug, Default)]
pub struct Misbehaving {
    inner: InMemory,
    ignores_create: bool,
    ignores_offset: bool,
}

impl Misbehaving {
    /// Every conditional create is an overwrite.
    pub fn ignoring_creates() -> Self {
        Misbehaving {
            ignores_create: true,
            ..Misbehaving::default()
        }
    }

    /// Every listing starts at the beginning, whatever its offset.
    pub fn ignoring_offsets() -> Self {
        Misbehaving {
            ignores_offset: true,
            ..Misbehaving::default()
        }
    }
}

impl std::fmt::Display for Misbehaving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Misbehaving")
    }
}

#[async_trait::async_trait]
impl ObjectStore for Misbehaving {
    async fn put_opts(&self, p: &Path, payload: PutPayload, o: PutOptions) -> Result<PutResult> {
        let o = if self.ignores_create {
            PutOptions {
                mode: PutMode::Overwrite,
                ..o
            }
        } else {
            o
        };
        self.inner.put_opts(p, payload, o).await
    }
    async fn put_multipart_opts(
        &self,
        p: &Path,
        o: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(p, o).await
    }
    async fn get_opts(&self, p: &Path, o: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(p, o).await
    }
    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }
    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }
    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        if self.ignores_offset {
            self.inner.list(prefix)
        } else {
            self.inner.list_with_offset(prefix, offset)
        }
    }
    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }
    async fn copy_opts(&self, from: &Path, to: &Path, o: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, o).await
    }
}
