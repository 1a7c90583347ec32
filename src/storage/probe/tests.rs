//! The probe against an in-memory store that honours conditional creates, and one that
//! treats them as overwrites (like an S3-compatible server that ignores `If-None-Match`).

use std::sync::Arc;

use deltalake::logstore::object_store::memory::InMemory;

use super::*;
use crate::storage::test_store::Misbehaving;

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
    let store = Misbehaving::ignoring_creates();
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
