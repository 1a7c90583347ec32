//! Reading tables with deletion vectors ([`super::provider`]) against delta-rs' own
//! scan, and with statistics that are not the values themselves.

use std::sync::Arc;

use deltalake::arrow::array::{Int64Array, RecordBatch};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::datafusion::prelude::SessionContext;

use crate::storage::tests::{
    replace_keys, rows_with_files, runtime, sorted_pairs, table_of_files, temp_lake,
};
use crate::storage::*;
use deltalake::parquet::arrow::arrow_reader::RowSelection;
use roaring::RoaringTreemap;

use super::provider::selection;

/// The (x, v) pairs `sql` returns, sorted.
async fn pairs(ctx: &SessionContext, sql: &str) -> Vec<(i64, i64)> {
    sorted_pairs(&sql_batches(ctx, sql, "pairs").await.unwrap())
}

/// A table whose files carry deletion vectors is read with them as row selections:
/// the same rows as delta-rs' own scan, across row groups, with pruning filters and
/// with files split into byte ranges over several partitions.
#[test]
fn deletion_vectors_read_as_row_selections() {
    runtime().block_on(async {
        let (lake, dir) = temp_lake();
        // 300,000 rows: three row groups of at most 131,072 rows.
        let big: Vec<i64> = (0..300_000).collect();
        let table = table_of_files(&lake, &[&big, &[300_000, 300_001, 300_002]]).await;
        let table = set_properties(table, "kv", &[(DELETION_VECTORS_PROPERTY, "true")])
            .await
            .unwrap();
        let marked = [0, 1, 131_071, 131_072, 200_000, 262_144, 299_999, 300_001];
        // The files holding the marked rows.
        let (_, files) = rows_with_files(&table, "x IN (0, 300001)").await;
        let (table, _, _, _) = replace_keys(table, &marked).await;
        let ctx = session();
        let mut config = ctx.state().config().clone();
        config.options_mut().execution.target_partitions = 4;
        config.options_mut().optimizer.repartition_file_min_size = 1;
        let ctx = SessionContext::new_with_config(config);
        register(&ctx, "ours", &table).await.unwrap();
        let delta = table.table_provider().await.unwrap();
        ctx.register_table("theirs", delta).unwrap();
        let plan = sql_batches(&ctx, "EXPLAIN SELECT * FROM ours", "plan")
            .await
            .unwrap();
        let plan = deltalake::arrow::util::pretty::pretty_format_batches(&plan)
            .unwrap()
            .to_string();
        assert!(!plan.contains("DeltaScan"), "{plan}");
        let expected: Vec<(i64, i64)> = (0..300_003)
            .map(|x| match marked.contains(&x) {
                true => (x, x + 1_000_000),
                false => (x, x),
            })
            .collect();
        let all = pairs(&ctx, "SELECT x, v FROM ours").await;
        assert_eq!(all.len(), expected.len());
        assert!(all == expected);
        for filter in [
            "x BETWEEN 131000 AND 131100",
            "x >= 262000",
            "v >= 1000000",
            "x = 131072",
            "x < 5 OR x > 299998",
        ] {
            let ours = pairs(&ctx, &format!("SELECT x, v FROM ours WHERE {filter}")).await;
            let theirs = pairs(&ctx, &format!("SELECT x, v FROM theirs WHERE {filter}")).await;
            assert!(!ours.is_empty(), "{filter}");
            assert_eq!(ours, theirs, "{filter}");
        }
        let count = sql_batches(&ctx, "SELECT COUNT(*) FROM ours", "count")
            .await
            .unwrap();
        let n = count[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0);
        assert_eq!(n, 300_003);
        // The file column names the files the rows are in.
        let (_, of_200000) = rows_with_files(&table, "x = 200001").await;
        let (_, of_1) = rows_with_files(&table, "x = 2").await;
        assert_eq!(of_200000, of_1);
        assert_eq!(of_1.len(), 1);
        assert!(files.contains(&of_1[0]), "{of_1:?} not in {files:?}");
        std::fs::remove_dir_all(dir).ok();
    });
}

/// A table with deletion vectors whose log statistics are not the values themselves
/// (delta-rs writes those of a decimal of more than 15 digits through an `f64`): a one-row
/// file, whose bounds are equal, is still read from the file, and the bounds prune
/// nothing away.
#[test]
fn wide_decimals_are_read_from_the_files_not_their_statistics() {
    use deltalake::arrow::array::Decimal128Array;
    runtime().block_on(async {
        let (lake, dir) = temp_lake();
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("x", DataType::Int64, false),
            Field::new("d", DataType::Decimal128(18, 2), true),
        ]));
        let rows = |xs: &[i64], ds: &[i128]| {
            let d = Decimal128Array::from(ds.to_vec())
                .with_precision_and_scale(18, 2)
                .unwrap();
            let x = Int64Array::from(xs.to_vec());
            RecordBatch::try_new(schema.clone(), vec![Arc::new(x), Arc::new(d)]).unwrap()
        };
        let wide: i128 = 123_456_789_012_345_678;
        let mut table = lake
            .open_or_create("dec", &schema, FileSize::Upsert)
            .await
            .unwrap();
        for batch in [rows(&[1], &[wide]), rows(&[2, 3], &[wide + 1, wide + 2])] {
            let mut w = AppendWriter::new(&table, "dec").unwrap();
            w.write(batch).await.unwrap();
            let props = commit_info("test", serde_json::json!({}));
            w.commit(&mut table, props, None).await.unwrap();
        }
        let table = set_properties(table, "dec", &[(DELETION_VECTORS_PROPERTY, "true")])
            .await
            .unwrap();
        // Key 3 replaced: its file gets a vector, so the table is read with them.
        let ctx = session();
        register_with_files(&ctx, "dec", &table, "f").await.unwrap();
        let found = sql_batches(&ctx, "SELECT x, d, f FROM dec WHERE x = 3", "found")
            .await
            .unwrap();
        let (replaced, files) = split_file_column(found).unwrap();
        let spec = Replacement {
            table_name: "dec",
            keys: &["x".to_string()],
            replaced: &replaced,
            files: &files,
            txn: None,
            returned: None,
            marks: None,
        };
        let props = commit_info("test", serde_json::json!({}));
        let (table, _, _) = replace_rows(table, &ctx, &spec, &[rows(&[3], &[7])], props)
            .await
            .unwrap();
        let ctx = session();
        register(&ctx, "dec", &table).await.unwrap();
        let read = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let batches = sql_batches(&ctx, sql, "read").await.unwrap();
                let mut values: Vec<String> = batches
                    .iter()
                    .flat_map(|b| {
                        let text = deltalake::arrow::util::display::ArrayFormatter::try_new(
                            b.column(0).as_ref(),
                            &Default::default(),
                        )
                        .unwrap();
                        (0..b.num_rows())
                            .map(|i| text.value(i).to_string())
                            .collect::<Vec<_>>()
                    })
                    .collect();
                values.sort();
                values
            }
        };
        let all = read("SELECT CAST(d AS VARCHAR) FROM dec").await;
        assert_eq!(all, ["0.07", "1234567890123456.78", "1234567890123456.79"]);
        // (A bare literal of this many digits is a float in DataFusion's SQL.)
        let one = read(
            "SELECT CAST(d AS VARCHAR) FROM dec \
             WHERE d = CAST('1234567890123456.78' AS DECIMAL(18, 2))",
        )
        .await;
        assert_eq!(one, ["1234567890123456.78"]);
        std::fs::remove_dir_all(dir).ok();
    });
}

fn selected(s: &RowSelection) -> Vec<(bool, usize)> {
    s.iter().map(|r| (r.skip, r.row_count)).collect()
}

#[test]
fn vectors_become_selections_of_every_row() {
    let deleted: RoaringTreemap = [0u64, 1, 5, 9].into_iter().collect();
    let s = selection(&deleted, 10, "f").unwrap();
    assert_eq!(
        selected(&s),
        vec![(true, 2), (false, 3), (true, 1), (false, 3), (true, 1)]
    );
    assert_eq!(s.iter().map(|r| r.row_count).sum::<usize>(), 10);
    let all: RoaringTreemap = (0u64..4).collect();
    assert_eq!(selected(&selection(&all, 4, "f").unwrap()), vec![(true, 4)]);
    assert!(selection(&deleted, 9, "f").is_err());
}
