//! Tests of the UTC date rewrite against Arrow's cast.
use super::*;
use deltalake::arrow::array::TimestampMicrosecondArray;
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{Field, Schema};
use deltalake::arrow::record_batch::RecordBatch;
use deltalake::datafusion::prelude::SessionContext;

fn timestamps() -> TimestampMicrosecondArray {
    TimestampMicrosecondArray::from(vec![
        Some(0),
        Some(-1),
        None,
        Some(86_400_000_000 - 1),
        Some(86_400_000_000),
        Some(-86_400_000_000 * 365 * 300 - 7),
        Some(1_767_225_600_000_000 + 3_600_000_000 * 23),
    ])
}

#[test]
fn same_dates_as_arrows_cast() {
    for tz in [None, Some("UTC"), Some("+00:00")] {
        let ts: ArrayRef = Arc::new(timestamps().with_timezone_opt(tz));
        let expected = cast(&ts, &DataType::Date32).unwrap();
        assert_eq!(
            utc_dates(&ts).unwrap().as_ref(),
            expected.as_ref(),
            "{tz:?}"
        );
    }
    let other: ArrayRef = Arc::new(timestamps().with_timezone("Europe/Berlin"));
    assert!(utc_dates(&other).is_err());
}

#[tokio::test]
async fn the_rule_rewrites_utc_casts_only_and_keeps_names_and_results() {
    let utc = timestamps().with_timezone("UTC");
    let berlin = timestamps().with_timezone("Europe/Berlin");
    let schema = Arc::new(Schema::new(vec![
        Field::new("utc", utc.data_type().clone(), true),
        Field::new("berlin", berlin.data_type().clone(), true),
    ]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(utc), Arc::new(berlin)]).unwrap();
    let grouped = "SELECT CAST(utc AS DATE), CAST(berlin AS DATE) AS b, count(*) AS n FROM t \
                   WHERE CAST(utc AS DATE) >= DATE '1700-01-01' \
                   GROUP BY CAST(utc AS DATE), CAST(berlin AS DATE) ORDER BY 1, 2";
    let mut queries = vec![grouped.to_string()];
    for op in ["=", "<", "<=", ">", ">=", "<>"] {
        for day in ["1969-12-31", "1970-01-01", "1970-01-02"] {
            queries.push(format!(
                "SELECT utc, CAST(utc AS DATE) {op} DATE '{day}' AS f FROM t \
                 WHERE CAST(utc AS DATE) {op} DATE '{day}' OR DATE '{day}' {op} CAST(utc AS DATE) \
                 ORDER BY utc"
            ));
        }
    }
    for sql in &queries {
        let mut results = Vec::new();
        for rule in [false, true] {
            let ctx = SessionContext::new();
            if rule {
                ctx.add_optimizer_rule(Arc::new(UtcDateCast));
            }
            ctx.register_batch("t", batch.clone()).unwrap();
            let df = ctx.sql(sql).await.unwrap();
            let plan = format!(
                "{}",
                df.clone().into_optimized_plan().unwrap().display_indent()
            );
            assert!(!plan.contains("medallion_utc_date(t.berlin)"), "{plan}");
            if rule {
                assert!(!plan.contains("CAST(t.utc AS Date)"), "{plan}");
            }
            results.push(df.collect().await.unwrap());
        }
        assert_eq!(results[0][0].schema(), results[1][0].schema(), "{sql}");
        assert_eq!(results[0], results[1], "{sql}");
    }
}

/// The rows of `sql` with and without the rule, over `batch` as table `t`.
async fn both_ways(sql: &str, batch: &RecordBatch) -> [Vec<RecordBatch>; 2] {
    let mut out = [Vec::new(), Vec::new()];
    for (rule, out) in [false, true].into_iter().zip(out.iter_mut()) {
        let ctx = SessionContext::new();
        if rule {
            ctx.add_optimizer_rule(Arc::new(UtcDateCast));
        }
        ctx.register_batch("t", batch.clone()).unwrap();
        *out = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    }
    out
}

#[tokio::test]
async fn nullability_grouping_sets_and_in_lists_are_as_with_the_cast() {
    let ts = TimestampMicrosecondArray::from(vec![0, -1, 86_400_000_000, 7]).with_timezone("UTC");
    let schema = Arc::new(Schema::new(vec![Field::new(
        "ts",
        ts.data_type().clone(),
        false,
    )]));
    let batch = RecordBatch::try_new(schema, vec![Arc::new(ts)]).unwrap();
    for sql in [
        // A non-null column stays non-null through the rewrite (the union checks).
        "SELECT max(d) AS m FROM (SELECT CAST(ts AS DATE) AS d FROM t \
         UNION ALL SELECT CAST(ts AS DATE) FROM t)",
        "SELECT CAST(ts AS DATE) AS d, count(*) AS n FROM t \
         GROUP BY ROLLUP(CAST(ts AS DATE)) ORDER BY 1, 2",
        "SELECT ts FROM t WHERE CAST(ts AS DATE) IN (DATE '1970-01-01', DATE '1970-01-02') \
         ORDER BY ts",
    ] {
        let [without, with] = both_ways(sql, &batch).await;
        assert_eq!(without[0].schema(), with[0].schema(), "{sql}");
        assert_eq!(without, with, "{sql}");
    }
}

#[test]
fn a_date_out_of_range_fails_as_the_cast_does() {
    use deltalake::arrow::array::TimestampSecondArray;
    let far: ArrayRef = Arc::new(TimestampSecondArray::from(vec![2_000_000_000_000_000_000]));
    assert!(cast(&far, &DataType::Date32).is_err());
    assert!(utc_dates(&far).is_err());
}
