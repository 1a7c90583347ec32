//! Storage guarantees that the exactly-once design rests on.

use std::sync::Arc;

use deltalake::arrow::array::{Int64Array, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Schema};

use super::*;
use url::Url;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]))
}

fn temp_lake() -> (Lakehouse, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("medallion-storage-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = Url::from_directory_path(&dir).unwrap();
    (Lakehouse::local(url), dir)
}

async fn append(lake: &Lakehouse, seq: i64) -> Result<Committed> {
    let mut table = lake
        .open_or_create("t", &schema(), FileSize::Append)
        .await?;
    let mut w = AppendWriter::new(&table, "t")?;
    let batch =
        RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![seq]))]).unwrap();
    w.write(batch).await?;
    w.commit(
        &mut table,
        commit_info("test", serde_json::json!({})),
        Some(("app", seq)),
    )
    .await
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn transaction_versions_fence_stage_commits() {
    runtime().block_on(async {
        let (lake, dir) = temp_lake();
        assert!(matches!(
            append(&lake, 1).await.unwrap(),
            Committed::Wrote(_)
        ));
        assert!(matches!(
            append(&lake, 3).await.unwrap(),
            Committed::Wrote(_)
        ));
        // The same seq again is already there: nothing is written twice.
        assert!(matches!(
            append(&lake, 3).await.unwrap(),
            Committed::AlreadyThere(_)
        ));
        // An older seq than the table holds means another run went past: refuse.
        let err = append(&lake, 2).await.unwrap_err();
        assert!(
            matches!(
                err,
                MedallionError::Fenced {
                    seq: 2,
                    found: 3,
                    ..
                }
            ),
            "{err}"
        );
        let table = lake.open("t").await.unwrap().unwrap();
        assert!(stage_done(&table, "app", "t", 3).await.unwrap());
        assert!(!stage_done(&table, "app", "t", 4).await.unwrap());
        assert!(matches!(
            stage_done(&table, "app", "t", 1).await,
            Err(MedallionError::Fenced { .. })
        ));
        assert_eq!(row_count(&session(), &table, "t").await.unwrap(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    });
}

#[test]
fn concurrent_creates_make_one_table() {
    for _ in 0..10 {
        let (lake, dir) = temp_lake();
        let barrier = Arc::new(std::sync::Barrier::new(6));
        let threads: Vec<_> = (0..6)
            .map(|_| {
                let (lake, barrier) = (lake.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    barrier.wait();
                    rt.block_on(lake.open_or_create("t", &schema(), FileSize::Append))
                        .map(|_| ())
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        let commits = std::fs::read_dir(dir.join("t/_delta_log"))
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".json")
            })
            .count();
        assert_eq!(commits, 1, "one CREATE TABLE commit");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

#[test]
fn dictionaries_only_for_columns_that_repeat() {
    use deltalake::parquet::schema::types::ColumnPath;
    let schema = Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("start_time", crate::schema::utc_timestamp_type(), true),
        Field::new("usage_kwh", DataType::Decimal128(12, 3), true),
        Field::new("ratio", DataType::Float64, true),
        Field::new(crate::schema::SOURCE_LINE, DataType::Int64, false),
    ]);
    let props = write::writer_properties(&schema);
    let dict = |c: &str| props.dictionary_enabled(&ColumnPath::from(c));
    assert!(dict("customer_id"));
    assert!(dict("start_time"));
    assert!(!dict("usage_kwh"));
    assert!(!dict("ratio"));
    assert!(!dict(crate::schema::SOURCE_LINE));
}
