//! Storage guarantees that the exactly-once design rests on.

use std::sync::Arc;

use deltalake::arrow::array::{Int64Array, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Schema};

use super::*;
use url::Url;

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]))
}

pub(super) fn temp_lake() -> (Lakehouse, std::path::PathBuf) {
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

pub(super) fn runtime() -> tokio::runtime::Runtime {
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

/// A table of (x, v) rows, appended as one data file per slice of `files`.
pub(super) async fn table_of_files(lake: &Lakehouse, files: &[&[i64]]) -> DeltaTable {
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]));
    let mut table = lake
        .open_or_create("kv", &schema, FileSize::Upsert)
        .await
        .unwrap();
    for xs in files {
        let mut w = AppendWriter::new(&table, "kv").unwrap();
        w.write(kv(xs, 0)).await.unwrap();
        let props = commit_info("test", serde_json::json!({}));
        w.commit(&mut table, props, None).await.unwrap();
    }
    table
}

/// Rows (x, x + add).
pub(super) fn kv(xs: &[i64], add: i64) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("x", DataType::Int64, false),
        Field::new("v", DataType::Int64, false),
    ]));
    let vs: Vec<i64> = xs.iter().map(|x| x + add).collect();
    let columns: Vec<deltalake::arrow::array::ArrayRef> = vec![
        Arc::new(Int64Array::from(xs.to_vec())),
        Arc::new(Int64Array::from(vs)),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// The rows of `kv` matching `filter`, and (last column) their files' URLs.
pub(super) async fn rows_with_files(
    table: &DeltaTable,
    filter: &str,
) -> (Vec<RecordBatch>, Vec<String>) {
    let ctx = session();
    register_with_files(&ctx, "kv", table, "f").await.unwrap();
    let sql = format!("SELECT x, v FROM kv WHERE {filter}");
    let rows = sql_batches(&ctx, &sql, "rows").await.unwrap();
    let sql = format!("SELECT DISTINCT CAST(f AS VARCHAR) FROM kv WHERE {filter}");
    let files = sql_batches(&ctx, &sql, "files").await.unwrap();
    let files = files
        .iter()
        .flat_map(|b| {
            let a = b
                .column(0)
                .as_any()
                .downcast_ref::<deltalake::arrow::array::StringArray>();
            a.unwrap()
                .iter()
                .flatten()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    (rows, files)
}

#[test]
fn replacing_rows_rewrites_only_the_files_that_hold_them() {
    runtime().block_on(async {
        let (lake, dir) = temp_lake();
        let table = table_of_files(&lake, &[&[1, 2, 3], &[4, 5, 6]]).await;
        let (replaced, files) = rows_with_files(&table, "x = 2").await;
        assert_eq!(files.len(), 1);
        let (_, file_of_5) = rows_with_files(&table, "x = 5").await;
        let spec = Replacement {
            table_name: "kv",
            keys: &["x".to_string()],
            replaced: &replaced,
            files: &files,
            txn: Some(("app", 1)),
            returned: None,
            marks: None,
        };
        let props = || commit_info("test", serde_json::json!({}));
        // Key 2 replaced, key 7 inserted.
        let rows = [kv(&[2, 7], 100)];
        let keys_only: Vec<RecordBatch> =
            replaced.iter().map(|b| b.project(&[0]).unwrap()).collect();
        let spec = Replacement {
            replaced: &keys_only,
            ..spec
        };
        let (table, m, dropped) = replace_rows(table, &session(), &spec, &rows, props())
            .await
            .unwrap();
        assert_eq!((m.inserted, m.updated, m.deleted), (1, 1, 0));
        // The replaced row, whole, as the file held it.
        assert_eq!(dropped, replaced);
        let (all, _) = rows_with_files(&table, "true").await;
        assert_eq!(
            sorted_pairs(&all),
            [(1, 1), (2, 102), (3, 3), (4, 4), (5, 5), (6, 6), (7, 107)]
        );
        // The file of keys 4..6 was not touched; the one of 1..3 became 1, 3; the
        // upserted rows are a file of their own.
        assert_eq!(rows_with_files(&table, "x = 5").await.1, file_of_5);
        let (_, file_of_1) = rows_with_files(&table, "x = 1").await;
        assert_eq!(rows_with_files(&table, "x = 3").await.1, file_of_1);
        assert_ne!(file_of_1, files);
        assert_ne!(rows_with_files(&table, "x = 7").await.1, file_of_1);
        let ops = history(&table, "kv", Some(1)).await.unwrap();
        assert_eq!(ops[0].operation, "MERGE");
        let version = table.version();
        // Replacing again from the same, now stale, files fails and changes nothing.
        let spec = Replacement { txn: None, ..spec };
        let stale = replace_rows(table, &session(), &spec, &rows, props()).await;
        assert!(stale.is_err());
        let table = lake.open("kv").await.unwrap().unwrap();
        assert_eq!(table.version(), version);
        assert_eq!(row_count(&session(), &table, "kv").await.unwrap(), 7);
        std::fs::remove_dir_all(dir).ok();
    });
}

/// The (x, v) pairs of `batches`, sorted.
pub(super) fn sorted_pairs(batches: &[RecordBatch]) -> Vec<(i64, i64)> {
    let mut pairs: Vec<(i64, i64)> = batches
        .iter()
        .flat_map(|b| {
            let col = |i: usize| b.column(i).as_any().downcast_ref::<Int64Array>().unwrap();
            (0..b.num_rows())
                .map(|r| (col(0).value(r), col(1).value(r)))
                .collect::<Vec<_>>()
        })
        .collect();
    pairs.sort();
    pairs
}

/// Replace the rows of `kv` whose keys are `xs` by (x, x + 1,000,000), their files
/// found by a scan. Returns the table after the commit, its counts, the rows dropped,
/// and the rows the scan found.
pub(super) async fn replace_keys(
    table: DeltaTable,
    xs: &[i64],
) -> (
    DeltaTable,
    UpsertMetrics,
    Vec<RecordBatch>,
    Vec<RecordBatch>,
) {
    let list = xs.iter().map(i64::to_string).collect::<Vec<_>>().join(", ");
    let (replaced, files) = rows_with_files(&table, &format!("x IN ({list})")).await;
    let keys: Vec<RecordBatch> = replaced.iter().map(|b| b.project(&[0]).unwrap()).collect();
    let spec = Replacement {
        table_name: "kv",
        keys: &["x".to_string()],
        replaced: &keys,
        files: &files,
        txn: None,
        returned: None,
        marks: None,
    };
    let rows = [kv(xs, 1_000_000)];
    let props = commit_info("test", serde_json::json!({}));
    let (table, m, dropped) = replace_rows(table, &session(), &spec, &rows, props)
        .await
        .unwrap();
    (table, m, dropped, replaced)
}

#[test]
fn a_rewrite_reads_its_files_in_shares_and_keeps_every_other_row() {
    runtime().block_on(async {
        let (lake, dir) = temp_lake();
        // 700,000 rows (six row groups, about 11 MB: read in shares of byte ranges)
        // and a file the rewrite leaves alone.
        let big: Vec<i64> = (0..700_000).collect();
        let table = table_of_files(&lake, &[&big, &[700_000, 700_001]]).await;
        let replaced_keys = [0, 131_071, 131_072, 300_000, 524_288, 699_999];
        let (table, m, dropped, replaced) = replace_keys(table, &replaced_keys).await;
        assert_eq!((m.inserted, m.updated), (0, 6));
        assert_eq!(sorted_pairs(&dropped), sorted_pairs(&replaced));
        let (all, _) = rows_with_files(&table, "true").await;
        let mut expected: Vec<(i64, i64)> = (0..700_002).map(|x| (x, x)).collect();
        for x in replaced_keys {
            expected[x as usize].1 = x + 1_000_000;
        }
        assert_eq!(sorted_pairs(&all), expected);
        // The big file's rows were written by more than one share (each to files of
        // its own), beside the untouched file and the upserted rows' file.
        let data_files = table.snapshot().unwrap().log_data().iter().count();
        assert!(data_files >= 4, "{data_files} data files");
        std::fs::remove_dir_all(dir).ok();
    });
}
