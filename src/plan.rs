//! How a gold model is kept equal to its SQL over silver, decided from the model's
//! DataFusion logical plan (never by searching the SQL text).
//!
//! - [`Maintenance::ByKeys`]: the model aggregates (or selects) silver rows grouped by
//!   expressions that its keys output unchanged. A batch affects only the groups of the
//!   rows it touched, so only those are recomputed; filters above the aggregate
//!   (`HAVING`) are fine, because the affected keys come from the grouping expressions
//!   over the touched rows, not from the model's output.
//!   A model that inner-joins silver tables of several sources is kept the same way:
//!   the groups a change of one source affects come from its touched rows joined with
//!   the other sources as they are (Δ(R ⋈ S) = ΔR ⋈ S).
//! - [`Maintenance::Full`]: a row may depend on other keys' rows (window functions,
//!   `ORDER BY … LIMIT`, set operations, self-joins, subqueries, outer joins, global
//!   aggregates, nested aggregates): the whole model is recomputed every batch.
//! - Refused: models that can never equal a later recompute: functions that are not
//!   immutable (`now()`, `random()`), and `LIMIT` without `ORDER BY`.

use std::fmt;
use std::sync::Arc;

use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use deltalake::datafusion::common::{Column, DataFusionError, JoinType};
use deltalake::datafusion::logical_expr::{
    Distinct, Expr, LogicalPlan, LogicalPlanBuilder, Volatility, cast,
};

/// How a model's gold table is kept current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Maintenance {
    /// Only the model keys a batch touched are recomputed.
    ByKeys,
    /// The whole model is recomputed every batch, for the reason given.
    Full { reason: String },
}

impl fmt::Display for Maintenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Maintenance::ByKeys => write!(f, "incremental: recomputes the keys a batch touches"),
            Maintenance::Full { reason } => write!(f, "full recompute every batch: {reason}"),
        }
    }
}

/// What a model's plan allows: the maintenance mode, or why it is refused.
/// `silver_key` is silver's natural key: a model that only selects silver rows must
/// keep it among its keys.
pub fn maintenance(
    plan: &LogicalPlan,
    keys: &[String],
    silver_key: &[String],
) -> Result<Maintenance, String> {
    Ok(match shape(plan, keys, silver_key)? {
        Shape::ByKeys { .. } => Maintenance::ByKeys,
        Shape::Full(reason) => Maintenance::Full { reason },
    })
}

/// For a [`Maintenance::ByKeys`] model planned over the rows a batch touched (registered
/// as its silver), the plan of the distinct model keys those rows affect, with the
/// columns of `key_schema`. `None` for models recomputed in full.
pub fn affected_keys_plan(
    plan: &LogicalPlan,
    keys: &[String],
    silver_key: &[String],
    key_schema: &SchemaRef,
) -> Result<Option<LogicalPlan>, DataFusionError> {
    let Ok(Shape::ByKeys { input, key_exprs }) = shape(plan, keys, silver_key) else {
        return Ok(None);
    };
    let exprs = key_exprs
        .into_iter()
        .zip(key_schema.fields())
        .map(|(e, f)| cast(e, f.data_type().clone()).alias(f.name()));
    Ok(Some(
        LogicalPlanBuilder::from(input)
            .project(exprs)?
            .distinct()?
            .build()?,
    ))
}

/// The silver tables a model's plan reads, by source name: `silver.<name>`, and
/// `silver` for the only source, given as `single`.
pub fn silver_sources(plan: &LogicalPlan, single: Option<&str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node {
            let r = &scan.table_name;
            let name = match (r.schema(), r.table()) {
                (Some("silver"), table) => Some(table.to_string()),
                (None, "silver") => single.map(str::to_string),
                _ => None,
            };
            if let Some(name) = name.filter(|n| !out.contains(n)) {
                out.push(name);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    out
}

enum Shape {
    /// Keys are computed by `key_exprs` (one per model key) over `input`'s rows.
    ByKeys {
        input: Arc<LogicalPlan>,
        key_exprs: Vec<Expr>,
    },
    Full(String),
}

fn shape(plan: &LogicalPlan, keys: &[String], silver_key: &[String]) -> Result<Shape, String> {
    refuse_unrepeatable(plan)?;
    if let Some(reason) = needs_full(plan) {
        return Ok(Shape::Full(reason));
    }
    let Some(boundary) = spine_boundary(plan) else {
        return Ok(Shape::Full(
            "its result is not a grouping or selection of silver rows".into(),
        ));
    };
    let mut traced = Vec::with_capacity(keys.len());
    for k in keys {
        let Some(idx) = plan.schema().index_of_column_by_name(None, k) else {
            return Err(format!("the query has no output column \"{k}\""));
        };
        traced.push((k, trace(plan, idx)));
    }
    match boundary {
        LogicalPlan::Aggregate(agg) => {
            if agg.group_expr.is_empty() {
                return Ok(Shape::Full(
                    "a global aggregate (no GROUP BY): its row depends on every silver row".into(),
                ));
            }
            if agg
                .group_expr
                .iter()
                .any(|e| matches!(e, Expr::GroupingSet(_)))
            {
                return Ok(Shape::Full(
                    "GROUPING SETS, ROLLUP or CUBE: a subtotal depends on many groups".into(),
                ));
            }
            if let Some((k, _)) = traced.iter().find(|(_, t)| *t == Traced::Computed) {
                return Ok(Shape::Full(computed_key(k)));
            }
            for (i, g) in agg.group_expr.iter().enumerate() {
                if !traced.iter().any(|(_, t)| *t == Traced::Group(i)) {
                    return Err(format!(
                        "the keys [{}] do not identify a row: the query groups by `{}`, \
                         which no key column outputs unchanged",
                        keys.join(", "),
                        g.schema_name()
                    ));
                }
            }
            let mut key_exprs = Vec::new();
            for (k, t) in traced {
                key_exprs.push(match t {
                    Traced::Group(i) => agg.group_expr[i].clone(),
                    Traced::Constant(e) => e,
                    _ => return Ok(Shape::Full(computed_key(k))),
                });
            }
            Ok(Shape::ByKeys {
                input: agg.input.clone(),
                key_exprs,
            })
        }
        scan => {
            let mut key_exprs = Vec::new();
            for (k, t) in traced {
                key_exprs.push(match t {
                    Traced::Column(e) | Traced::Constant(e) => e,
                    _ => return Ok(Shape::Full(computed_key(k))),
                });
            }
            // Rows of a selection are silver rows: unique by silver's key, or, under a
            // DISTINCT, by all of their columns.
            let selected: Vec<String> = key_exprs
                .iter()
                .filter_map(|e| match e {
                    Expr::Column(c) => Some(c.name.clone()),
                    _ => None,
                })
                .collect();
            // An append source has no key: its rows are unique only under a DISTINCT.
            let unique = (!silver_key.is_empty()
                && silver_key.iter().all(|k| selected.contains(k)))
                || (distinct_on_spine(plan) && keys.len() == plan.schema().fields().len());
            if !unique {
                return Err(format!(
                    "the keys [{}] do not identify a row: the query selects silver rows, so \
                     its keys must include silver's key ({}), or it must be a SELECT DISTINCT \
                     of its key columns only",
                    keys.join(", "),
                    silver_key.join(", ")
                ));
            }
            Ok(Shape::ByKeys {
                input: Arc::new(scan.clone()),
                key_exprs,
            })
        }
    }
}

fn computed_key(k: &str) -> String {
    format!("key column \"{k}\" is computed, not a grouping expression passed through")
}

/// Refuse what no recompute can reproduce.
fn refuse_unrepeatable(plan: &LogicalPlan) -> Result<(), String> {
    let mut refusal = None;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::Limit(limit) = node
            && !sorted(&limit.input)
        {
            refusal = Some(
                "LIMIT without ORDER BY picks arbitrary rows, so gold could never equal a \
                 recompute; add an ORDER BY that makes the rows unique"
                    .to_string(),
            );
            return Ok(TreeNodeRecursion::Stop);
        }
        node.apply_expressions(|e| {
            e.apply(|e| {
                if let Some((name, volatility)) = function_volatility(e)
                    && volatility != Volatility::Immutable
                {
                    refusal = Some(format!(
                        "{name}() can give a different result on every run (it is not \
                         deterministic, or depends on the order rows are read in without an \
                         ORDER BY of its own), so gold could never equal its SQL recomputed \
                         later; remove it from the model, or give it an ORDER BY"
                    ));
                    return Ok(TreeNodeRecursion::Stop);
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if refusal.is_some() {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    refusal.map_or(Ok(()), Err)
}

/// Aggregates whose result depends on the order of their input rows.
const ORDER_DEPENDENT: [&str; 5] = [
    "first_value",
    "last_value",
    "nth_value",
    "array_agg",
    "string_agg",
];

fn function_volatility(e: &Expr) -> Option<(String, Volatility)> {
    match e {
        Expr::ScalarFunction(f) => Some((f.func.name().to_string(), f.func.signature().volatility)),
        // An aggregate whose result depends on the order rows arrive in (first_value,
        // array_agg, string_agg) is only repeatable with an ORDER BY of its own.
        // (DataFusion's own order-sensitivity flag is conservative: every aggregate that
        // does not say otherwise, COUNT included, claims to need an order.)
        Expr::AggregateFunction(f)
            if ORDER_DEPENDENT.contains(&f.func.name()) && f.params.order_by.is_empty() =>
        {
            Some((f.func.name().to_string(), Volatility::Volatile))
        }
        Expr::AggregateFunction(f) => {
            Some((f.func.name().to_string(), f.func.signature().volatility))
        }
        _ => None,
    }
}

/// Whether `plan` is a sort, seen through projections and aliases.
fn sorted(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Sort(_) => true,
        LogicalPlan::Projection(p) => sorted(&p.input),
        LogicalPlan::SubqueryAlias(a) => sorted(&a.input),
        _ => false,
    }
}

/// Why a model must be recomputed in full, judged over the whole plan. Inner joins of
/// different silver tables stay incremental: when one source changes, the groups it
/// affects are those of its touched rows joined with the other sources as they are
/// (Δ(R ⋈ S) = ΔR ⋈ S).
fn needs_full(plan: &LogicalPlan) -> Option<String> {
    let (mut windows, mut limits, mut unions, mut aggregates, mut subqueries) = (0, 0, 0, 0, 0);
    let mut scanned: Vec<String> = Vec::new();
    let mut repeated = None;
    let mut outer = None;
    let mut other = None;
    let _ = plan.apply_with_subqueries(|node| {
        match node {
            LogicalPlan::TableScan(scan) => {
                // As the source it is: `silver` alone is the only source's table, so it
                // is the same as any `silver.<name>` (a catalog prefix changes nothing).
                let r = &scan.table_name;
                let name = match (r.schema(), r.table()) {
                    (Some(schema), table) => format!("{schema}.{table}"),
                    (None, table) => table.to_string(),
                };
                let same = |seen: &String| {
                    *seen == name
                        || (name == "silver" && seen.starts_with("silver."))
                        || (*seen == "silver" && name.starts_with("silver."))
                };
                if scanned.iter().any(same) {
                    repeated.get_or_insert(name);
                } else {
                    scanned.push(name);
                }
            }
            LogicalPlan::Window(_) => windows += 1,
            LogicalPlan::Limit(_) => limits += 1,
            LogicalPlan::Union(_) => unions += 1,
            LogicalPlan::Join(join) if join.join_type != JoinType::Inner => {
                outer.get_or_insert(join.join_type);
            }
            LogicalPlan::Join(_) => {}
            LogicalPlan::Aggregate(_) => aggregates += 1,
            LogicalPlan::Subquery(_) => subqueries += 1,
            LogicalPlan::Projection(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::SubqueryAlias(_)
            | LogicalPlan::Distinct(Distinct::All(_)) => {}
            other_node => {
                other.get_or_insert_with(|| other_node.display().to_string());
            }
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if windows > 0 {
        return Some("a window function: a row depends on other keys' rows".into());
    }
    if limits > 0 {
        return Some("ORDER BY … LIMIT: which rows appear depends on every key".into());
    }
    if unions > 0 {
        return Some("a set operation (UNION): a row may come from either side".into());
    }
    if let Some(table) = repeated {
        return Some(format!(
            "it reads {table} more than once (a self-join, a set operation or a subquery)"
        ));
    }
    if subqueries > 0 {
        return Some("a subquery: a row may depend on rows of other keys".into());
    }
    if scanned.is_empty() {
        return Some("it does not read silver".into());
    }
    if let Some(join) = outer {
        return Some(format!(
            "a {join} join: a row may depend on the absence of rows of other keys (only \
             inner joins are kept incrementally)"
        ));
    }
    if aggregates > 1 {
        return Some("nested aggregates: an outer group depends on inner groups".into());
    }
    other.map(|node| format!("`{node}` is not analysed for incremental upkeep"))
}

/// The spine's grouping boundary: the aggregate (or, for a model that only selects,
/// the scan) reached from the top through projections, filters, sorts without a limit,
/// aliases and DISTINCT.
fn spine_boundary(plan: &LogicalPlan) -> Option<&LogicalPlan> {
    match plan {
        LogicalPlan::Aggregate(_) | LogicalPlan::TableScan(_) => Some(plan),
        LogicalPlan::Projection(p) => spine_boundary(&p.input),
        LogicalPlan::Filter(f) => spine_boundary(&f.input),
        LogicalPlan::Sort(s) if s.fetch.is_none() => spine_boundary(&s.input),
        LogicalPlan::SubqueryAlias(a) => spine_boundary(&a.input),
        LogicalPlan::Distinct(Distinct::All(input)) => spine_boundary(input),
        _ => None,
    }
}

/// Whether the spine holds a `DISTINCT` over its rows.
fn distinct_on_spine(plan: &LogicalPlan) -> bool {
    match plan {
        LogicalPlan::Distinct(Distinct::All(_)) => true,
        LogicalPlan::Projection(p) => distinct_on_spine(&p.input),
        LogicalPlan::Filter(f) => distinct_on_spine(&f.input),
        LogicalPlan::Sort(s) => distinct_on_spine(&s.input),
        LogicalPlan::SubqueryAlias(a) => distinct_on_spine(&a.input),
        _ => false,
    }
}

/// Where output column `idx` of a spine node comes from.
#[derive(Debug, Clone, PartialEq)]
enum Traced {
    /// Grouping expression `i` of the boundary aggregate, unchanged.
    Group(usize),
    /// A column of the boundary scan, unchanged.
    Column(Expr),
    /// A literal: the same for every row.
    Constant(Expr),
    /// Anything else (an aggregate, a computed value).
    Computed,
}

fn trace(plan: &LogicalPlan, idx: usize) -> Traced {
    match plan {
        LogicalPlan::Projection(p) => {
            match p.expr.get(idx).map(|e| e.clone().unalias_nested().data) {
                Some(Expr::Column(c)) => match p.input.schema().index_of_column(&c) {
                    Ok(i) => trace(&p.input, i),
                    Err(_) => Traced::Computed,
                },
                Some(e @ Expr::Literal(..)) => Traced::Constant(e),
                _ => Traced::Computed,
            }
        }
        LogicalPlan::Filter(f) => trace(&f.input, idx),
        LogicalPlan::Sort(s) => trace(&s.input, idx),
        LogicalPlan::SubqueryAlias(a) => trace(&a.input, idx),
        LogicalPlan::Distinct(Distinct::All(input)) => trace(input, idx),
        LogicalPlan::Aggregate(a) if idx < a.group_expr.len() => Traced::Group(idx),
        LogicalPlan::TableScan(_) if idx < plan.schema().fields().len() => Traced::Column(
            Expr::Column(Column::from(plan.schema().qualified_field(idx))),
        ),
        _ => Traced::Computed,
    }
}

#[cfg(test)]
mod tests;
