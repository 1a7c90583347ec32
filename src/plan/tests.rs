use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use deltalake::datafusion::datasource::MemTable;
use deltalake::datafusion::prelude::SessionContext;

use super::*;

async fn mode(sql: &str, keys: &[&str]) -> Result<Maintenance, String> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("meter_id", DataType::Utf8, true),
        Field::new(
            "start_time",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            true,
        ),
        Field::new("usage_kwh", DataType::Decimal128(12, 3), true),
    ]));
    let ctx = SessionContext::new();
    let silver = MemTable::try_new(schema, vec![vec![]]).unwrap();
    ctx.register_table("silver", Arc::new(silver)).unwrap();
    let customers = Arc::new(Schema::new(vec![
        Field::new("customer_id", DataType::Utf8, true),
        Field::new("region", DataType::Utf8, true),
    ]));
    let customers = MemTable::try_new(customers, vec![vec![]]).unwrap();
    ctx.register_table("customers", Arc::new(customers))
        .unwrap();
    let df = ctx.sql(sql).await.unwrap();
    let keys: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
    let silver_key = ["customer_id", "meter_id", "start_time"].map(String::from);
    maintenance(df.logical_plan(), &keys, &silver_key)
}

fn full(m: Result<Maintenance, String>, why: &str) {
    match m {
        Ok(Maintenance::Full { reason }) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected a full recompute ({why}), got {other:?}"),
    }
}

fn refused(m: Result<Maintenance, String>, why: &str) {
    match m {
        Err(reason) => assert!(reason.contains(why), "{reason}"),
        other => panic!("expected a refusal ({why}), got {other:?}"),
    }
}

#[tokio::test]
async fn grouped_aggregates_are_maintained_by_keys() {
    let by_keys = [
        "SELECT customer_id, CAST(start_time AS DATE) AS d, SUM(usage_kwh) AS kwh FROM silver GROUP BY customer_id, CAST(start_time AS DATE)",
        "SELECT customer_id, COUNT(*) AS n FROM silver GROUP BY customer_id HAVING COUNT(*) >= 20",
        "SELECT customer_id, date_trunc('month', start_time) AS month, SUM(usage_kwh) AS kwh FROM silver GROUP BY 1, 2",
        "SELECT customer_id, COUNT(DISTINCT meter_id) AS meters FROM silver WHERE usage_kwh > 0 GROUP BY customer_id ORDER BY 2",
        "SELECT 'all' AS scope, customer_id, MAX(usage_kwh) AS peak FROM silver GROUP BY customer_id",
        "SELECT customer_id, meter_id, start_time, usage_kwh FROM silver WHERE usage_kwh > 10",
    ];
    for sql in by_keys {
        let keys: &[&str] = if sql.contains("'all'") {
            &["scope", "customer_id"]
        } else if sql.contains("month") {
            &["customer_id", "month"]
        } else if sql.contains(" AS d,") {
            &["customer_id", "d"]
        } else if sql.contains("meter_id, start_time") {
            &["customer_id", "meter_id", "start_time"]
        } else {
            &["customer_id"]
        };
        assert_eq!(mode(sql, keys).await, Ok(Maintenance::ByKeys), "{sql}");
    }
}

#[tokio::test]
async fn inner_joins_of_sources_are_maintained_by_keys_and_other_joins_in_full() {
    let joined = "SELECT c.region, CAST(s.start_time AS DATE) AS d, SUM(s.usage_kwh) AS kwh \
                  FROM silver s JOIN customers c ON s.customer_id = c.customer_id \
                  GROUP BY c.region, CAST(s.start_time AS DATE)";
    assert_eq!(
        mode(joined, &["region", "d"]).await,
        Ok(Maintenance::ByKeys)
    );
    full(
        mode(&joined.replace(" JOIN ", " LEFT JOIN "), &["region", "d"]).await,
        "Left join",
    );
    full(
        mode(
            "SELECT customer_id, SUM(usage_kwh) AS kwh FROM silver WHERE customer_id IN \
              (SELECT customer_id FROM customers) GROUP BY customer_id",
            &["customer_id"],
        )
        .await,
        "subquery",
    );
}

#[tokio::test]
async fn models_whose_rows_depend_on_other_keys_are_recomputed_in_full() {
    full(
        mode("SELECT customer_id, kwh, RANK() OVER (ORDER BY kwh DESC) AS r FROM (SELECT customer_id, SUM(usage_kwh) AS kwh FROM silver GROUP BY customer_id) t", &["customer_id"]).await,
        "window",
    );
    full(
        mode("SELECT customer_id, SUM(usage_kwh) AS kwh FROM silver GROUP BY customer_id ORDER BY kwh DESC, customer_id LIMIT 5", &["customer_id"]).await,
        "LIMIT",
    );
    full(
        mode(
            "SELECT customer_id FROM silver UNION SELECT meter_id FROM silver",
            &["customer_id"],
        )
        .await,
        "set operation",
    );
    full(
        mode("SELECT a.customer_id, COUNT(*) AS n FROM silver a JOIN silver b ON a.meter_id = b.meter_id GROUP BY a.customer_id", &["customer_id"]).await,
        "more than once",
    );
    full(
        mode(
            "SELECT 'all' AS k, SUM(usage_kwh) AS kwh FROM silver",
            &["k"],
        )
        .await,
        "global aggregate",
    );
    full(
        mode("SELECT CAST(start_time AS DATE) AS d, AVG(kwh) AS kwh FROM (SELECT customer_id, start_time, SUM(usage_kwh) AS kwh FROM silver GROUP BY 1, 2) t GROUP BY 1", &["d"]).await,
        "nested",
    );
    full(
        mode("SELECT upper(customer_id) AS c, SUM(usage_kwh) AS kwh FROM silver GROUP BY customer_id", &["c"]).await,
        "computed",
    );
}

#[tokio::test]
async fn models_that_cannot_equal_a_recompute_are_refused() {
    refused(
        mode(
            "SELECT customer_id, now() AS at FROM silver GROUP BY customer_id",
            &["customer_id"],
        )
        .await,
        "now()",
    );
    refused(
        mode(
            "SELECT customer_id, SUM(usage_kwh) * random() AS x FROM silver GROUP BY customer_id",
            &["customer_id"],
        )
        .await,
        "random()",
    );
    refused(
        mode(
            "SELECT customer_id, usage_kwh FROM silver LIMIT 10",
            &["customer_id"],
        )
        .await,
        "LIMIT without ORDER BY",
    );
    refused(
        mode(
            "SELECT customer_id, SUM(usage_kwh) AS kwh FROM silver GROUP BY customer_id, meter_id",
            &["customer_id"],
        )
        .await,
        "do not identify a row",
    );
    refused(
        mode(
            "SELECT customer_id, usage_kwh FROM silver",
            &["customer_id"],
        )
        .await,
        "must include silver's key",
    );
    refused(
        mode(
            "SELECT customer_id, first_value(meter_id) AS m FROM silver GROUP BY customer_id",
            &["customer_id"],
        )
        .await,
        "first_value()",
    );
    assert_eq!(
        mode("SELECT DISTINCT customer_id FROM silver", &["customer_id"]).await,
        Ok(Maintenance::ByKeys)
    );
    assert_eq!(
        mode(
            "SELECT customer_id, first_value(meter_id ORDER BY meter_id) AS m FROM silver GROUP BY customer_id",
            &["customer_id"],
        )
        .await,
        Ok(Maintenance::ByKeys)
    );
}
