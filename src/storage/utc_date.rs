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
//! filters any other such date stays (or, pushed down after its rewrite, becomes again)
//! a cast, which pruning understands and a function not.

use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, Date32Array};
use deltalake::arrow::datatypes::{
    DataType, FieldRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType,
};
use deltalake::datafusion::common::tree_node::{Transformed, TreeNode};
use deltalake::datafusion::common::{DFSchema, ExprSchema, Result, ScalarValue, plan_err};
use deltalake::datafusion::logical_expr::ExprSchemable;
use deltalake::datafusion::logical_expr::expr::ScalarFunction;
use deltalake::datafusion::logical_expr::expr_rewriter::NamePreserver;
use deltalake::datafusion::logical_expr::utils::merge_schema;
use deltalake::datafusion::logical_expr::{
    BinaryExpr, Cast, ColumnarValue, Expr, LogicalPlan, Operator, ReturnFieldArgs,
    ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
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
        let mut rewrite_expr = |expr: Expr| {
            let name = names.save(&expr);
            let rewritten = expr.transform_up(|e| Ok(rewrite(e, &schema, in_scan)))?;
            Ok(Transformed::new_transformed(
                name.restore(rewritten.data),
                rewritten.transformed,
            ))
        };
        plan.map_expressions(|expr| {
            // A grouping set keeps its members' names, and takes no alias itself.
            if let Expr::GroupingSet(_) = &expr {
                expr.map_children(&mut rewrite_expr)
            } else {
                rewrite_expr(expr)
            }
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
    match (utc_date_arg(&e, schema), &e) {
        (Some((ts, _)), Expr::Cast(_)) if !in_scan => {
            let udf = Arc::new(ScalarUDF::from(UtcDate::default()));
            Transformed::yes(Expr::ScalarFunction(ScalarFunction::new_udf(
                udf,
                vec![ts.clone()],
            )))
        }
        // A filter pushed into a scan after its rewrite: pruning understands the cast.
        (Some((ts, _)), Expr::ScalarFunction(_)) if in_scan => Transformed::yes(Expr::Cast(
            Cast::new(Box::new(ts.clone()), DataType::Date32),
        )),
        _ => Transformed::no(e),
    }
}

/// The timestamp whose UTC date `e` is (a cast, or [`UtcDate`]), and its type.
fn utc_date_arg<'a>(e: &'a Expr, schema: &DFSchema) -> Option<(&'a Expr, DataType)> {
    let ts = match e {
        // A plain `CAST(… AS DATE)`: a target field with a name or metadata of its own
        // would give the result that name or metadata.
        Expr::Cast(Cast { expr, field })
            if *field.data_type() == DataType::Date32
                && field.name().is_empty()
                && field.metadata().is_empty() =>
        {
            expr.as_ref()
        }
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
        Some(tz) => ["UTC", "Etc/UTC", "+00:00", "+0000", "+00"].contains(&tz),
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

    /// The field a cast gives: the argument's, as a date (null where it is null), without
    /// an extension type.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let Some(arg) = args.arg_fields.first() else {
            return plan_err!("{UTC_DATE} takes one argument");
        };
        let mut metadata = arg.metadata().clone();
        metadata.remove("ARROW:extension:name");
        metadata.remove("ARROW:extension:metadata");
        Ok(Arc::new(
            arg.as_ref()
                .clone()
                .with_data_type(DataType::Date32)
                .with_metadata(metadata),
        ))
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
    use deltalake::arrow::error::ArrowError;
    use deltalake::datafusion::common::exec_err;
    let Some(per_day) = days_of(a.data_type()) else {
        return exec_err!("medallion_utc_date of {}", a.data_type());
    };
    // Beyond Date32's range (only seconds and milliseconds reach it), Arrow's cast fails.
    let day = |v: i64| {
        i32::try_from(v.div_euclid(per_day))
            .map_err(|_| ArrowError::CastError(format!("{v} is out of the range of a date")))
    };
    let dates: Date32Array = match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            a.as_primitive::<TimestampSecondType>().try_unary(day)?
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => a
            .as_primitive::<TimestampMillisecondType>()
            .try_unary(day)?,
        DataType::Timestamp(TimeUnit::Microsecond, _) => a
            .as_primitive::<TimestampMicrosecondType>()
            .try_unary(day)?,
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            a.as_primitive::<TimestampNanosecondType>().try_unary(day)?
        }
        t => return exec_err!("medallion_utc_date of {t}"),
    };
    debug_assert_eq!(dates.len(), a.len());
    Ok(Arc::new(dates))
}

#[cfg(test)]
#[path = "utc_date_tests.rs"]
mod tests;
