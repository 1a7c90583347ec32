//! `CAST(ts AS DATE)` of a UTC (or zone-less) timestamp as an integer division.
//!
//! Arrow's cast turns every such timestamp into a chrono date-time in its time zone
//! (zone tables included, even for UTC) before taking the date; a model grouping
//! readings by day (`CAST(start_time AS DATE)`) spent most of its CPU there, and a
//! recompute of affected days evaluated the cast three times per silver row (the two
//! pushed-down bounds of the day key and the grouping). The [`UtcDateCast`] optimizer
//! rule replaces those casts with [`UtcDate`]: the days since the epoch, rounded down
//! (the same value for every timestamp the cast accepts; nulls stay null).
//!
//! A comparison of such a date with a literal date becomes a range of the timestamp
//! itself (`CAST(ts AS DATE) <= DATE '2026-01-31'` is `ts < 2026-02-01T00:00Z`): no
//! date to compute, and a scan prunes files by the timestamp's statistics. In a scan's
//! filters any other cast stays a cast, which pruning understands and a function not.

use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, Date32Array};
use deltalake::arrow::datatypes::{
    DataType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use deltalake::datafusion::common::tree_node::{Transformed, TreeNode};
use deltalake::datafusion::common::{DFSchema, ExprSchema, Result, ScalarValue};
use deltalake::datafusion::logical_expr::ExprSchemable;
use deltalake::datafusion::logical_expr::expr::ScalarFunction;
use deltalake::datafusion::logical_expr::expr_rewriter::NamePreserver;
use deltalake::datafusion::logical_expr::utils::merge_schema;
use deltalake::datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, LogicalPlan, Operator, ScalarFunctionArgs, ScalarUDF,
    ScalarUDFImpl, Signature, Volatility,
};
use deltalake::datafusion::optimizer::optimizer::ApplyOrder;
use deltalake::datafusion::optimizer::{OptimizerConfig, OptimizerRule};

/// Rewrites `CAST(ts AS DATE)` of UTC timestamps into [`UtcDate`] (see the module).
#[derive(Debug, Default)]
pub struct UtcDateCast;

impl OptimizerRule for UtcDateCast {
    fn name(&self) -> &str {
        "medallion_utc_date_cast"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::BottomUp)
    }

    fn supports_rewrite(&self) -> bool {
        true
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let (schema, in_scan) = match &plan {
            LogicalPlan::Dml(_) => return Ok(Transformed::no(plan)),
            LogicalPlan::TableScan(scan) => (
                DFSchema::try_from_qualified_schema(
                    scan.table_name.clone(),
                    &scan.source.schema(),
                )?,
                true,
            ),
            p if p.inputs().is_empty() => return Ok(Transformed::no(plan)),
            p => (merge_schema(&p.inputs()), false),
        };
        // The plan's output names (and so its schema) must not change.
        let names = NamePreserver::new(&plan);
        plan.map_expressions(|expr| {
            let name = names.save(&expr);
            let rewritten = expr.transform_up(|e| Ok(rewrite(e, &schema, in_scan)))?;
            Ok(Transformed::new_transformed(
                name.restore(rewritten.data),
                rewritten.transformed,
            ))
        })
    }
}

/// A comparison of a UTC date with a literal date becomes a range of the timestamp
/// (exact, and a scan prunes files by it); any other UTC date cast becomes
/// [`UtcDate`], except in a scan's filters.
fn rewrite(e: Expr, schema: &DFSchema, in_scan: bool) -> Transformed<Expr> {
    if let Some(range) = as_range(&e, schema) {
        return Transformed::yes(range);
    }
    match utc_date_arg(&e, schema) {
        Some((ts, _)) if !in_scan && matches!(e, Expr::Cast(_)) => {
            let udf = Arc::new(ScalarUDF::from(UtcDate::default()));
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                udf,
                vec![ts.clone()],
            )))
        }
        _ => Transformed::no(e),
    }
}

/// The timestamp whose UTC date `e` is (a cast, or [`UtcDate`]), and its type.
fn utc_date_arg<'a>(e: &'a Expr, schema: &DFSchema) -> Option<(&'a Expr, DataType)> {
    let ts = match e {
        Expr::Cast(Cast { expr, field }) if *field.data_type() == DataType::Date32 => expr.as_ref(),
        Expr::ScalarFunction(f) if f.func.name() == UTC_DATE && f.args.len() == 1 => &f.args[0],
        _ => return None,
    };
    let t = ts.get_type(schema as &dyn ExprSchema).ok()?;
    days_of(&t).map(|_| (ts, t))
}

/// `utc_date(ts) op DATE 'd'` as a range of `ts`, for `op` one of `= < <= > >=`.
fn as_range(e: &Expr, schema: &DFSchema) -> Option<Expr> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let (date, day, op) = match (left.as_ref(), right.as_ref()) {
        (d, Expr::Literal(ScalarValue::Date32(Some(day)), _)) => (d, *day, *op),
        (Expr::Literal(ScalarValue::Date32(Some(day)), _), d) => (d, *day, op.swap()?),
        _ => return None,
    };
    let (ts, t) = utc_date_arg(date, schema)?;
    let at = |day: i32| timestamp(&t, day).map(|v| Expr::Literal(v, None));
    let ts = || Box::new(ts.clone());
    let cmp = |op, v| Expr::BinaryExpr(BinaryExpr::new(ts(), op, Box::new(v)));
    Some(match op {
        Operator::GtEq => cmp(Operator::GtEq, at(day)?),
        Operator::Gt => cmp(Operator::GtEq, at(day.checked_add(1)?)?),
        Operator::Lt => cmp(Operator::Lt, at(day)?),
        Operator::LtEq => cmp(Operator::Lt, at(day.checked_add(1)?)?),
        Operator::Eq => {
            cmp(Operator::GtEq, at(day)?).and(cmp(Operator::Lt, at(day.checked_add(1)?)?))
        }
        _ => return None,
    })
}

/// The first instant of `day` (days since the epoch) as a value of timestamp type `t`.
fn timestamp(t: &DataType, day: i32) -> Option<ScalarValue> {
    let DataType::Timestamp(unit, tz) = t else {
        return None;
    };
    let v = Some((day as i64).checked_mul(days_of(t)?)?);
    let tz = tz.clone();
    Some(match unit {
        TimeUnit::Second => ScalarValue::TimestampSecond(v, tz),
        TimeUnit::Millisecond => ScalarValue::TimestampMillisecond(v, tz),
        TimeUnit::Microsecond => ScalarValue::TimestampMicrosecond(v, tz),
        TimeUnit::Nanosecond => ScalarValue::TimestampNanosecond(v, tz),
    })
}

const UTC_DATE: &str = "medallion_utc_date";

/// The timestamp units in a day, for a timestamp type whose date is its UTC date.
fn days_of(t: &DataType) -> Option<i64> {
    let DataType::Timestamp(unit, tz) = t else {
        return None;
    };
    let utc = match tz.as_deref() {
        None => true,
        Some(tz) => ["UTC", "utc", "Etc/UTC", "Z", "+00:00", "+0000", "+00"].contains(&tz),
    };
    utc.then_some(match unit {
        TimeUnit::Second => 86_400,
        TimeUnit::Millisecond => 86_400_000,
        TimeUnit::Microsecond => 86_400_000_000,
        TimeUnit::Nanosecond => 86_400_000_000_000,
    })
}

/// The UTC date of a timestamp: days since 1970-01-01, rounded down.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct UtcDate {
    signature: Signature,
}

impl Default for UtcDate {
    fn default() -> Self {
        UtcDate {
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for UtcDate {
    fn name(&self) -> &str {
        UTC_DATE
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Date32)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match &args.args[0] {
            ColumnarValue::Array(a) => Ok(ColumnarValue::Array(utc_dates(a)?)),
            ColumnarValue::Scalar(s) => {
                let dates = utc_dates(&s.to_array()?)?;
                Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(
                    &dates, 0,
                )?))
            }
        }
    }
}

fn utc_dates(a: &ArrayRef) -> Result<ArrayRef> {
    use deltalake::datafusion::common::exec_err;
    let Some(per_day) = days_of(a.data_type()) else {
        return exec_err!("medallion_utc_date of {}", a.data_type());
    };
    let day = |v: i64| v.div_euclid(per_day) as i32;
    let dates: Date32Array = match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            a.as_primitive::<TimestampSecondType>().unary(day)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            a.as_primitive::<TimestampMillisecondType>().unary(day)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            a.as_primitive::<TimestampMicrosecondType>().unary(day)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            a.as_primitive::<TimestampNanosecondType>().unary(day)
        }
        t => return exec_err!("medallion_utc_date of {t}"),
    };
    debug_assert_eq!(dates.len(), a.len());
    Ok(Arc::new(dates))
}

#[cfg(test)]
mod tests {
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
}
