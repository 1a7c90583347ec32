//! Unit tests: the sample configuration loads, and each kind of configuration error is
//! reported with its place, all together.

use std::path::Path;

use super::*;

const SAMPLE: &str = include_str!("../../examples/readings.yaml");

fn load(text: &str) -> Result<Pipeline, Vec<ConfigError>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(load_str(text, Path::new("/tmp/medallion-test")))
}

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected errors"),
        Err(e) => e
            .into_iter()
            .map(|e| format!("{}: {}", e.place, e.message))
            .collect(),
    }
}

#[test]
fn sample_config_loads() {
    let p = load(SAMPLE).unwrap();
    assert_eq!(p.source.name, "readings");
    assert_eq!(p.source.columns.len(), 6);
    assert_eq!(p.source.key, ["customer_id", "meter_id", "start_time"]);
    assert_eq!(p.gold.len(), 1);
    assert_eq!(p.gold[0].keys, ["customer_id", "usage_date"]);
    assert_eq!(
        p.lakehouse.url.as_str(),
        "file:///tmp/medallion-test/lakehouse/"
    );
    assert_eq!(p.source.row_rules[1].action, RuleAction::Warn);
}

#[test]
fn all_errors_are_reported_together() {
    let text = SAMPLE
        .replace("type: decimal(12,3)", "type: decmal(12,3)")
        .replace("pattern: '^M\\d{8}$'", "pattern: '^M(\\d{8}$'")
        .replace("timezone: UTC", "timezone: Mars/Olympus")
        .replace(
            "check: end_time > start_time",
            "check: end_time > no_such_column",
        )
        .replace(
            "key: [customer_id, meter_id, start_time]",
            "key: [customer_id, meter, start_time]",
        );
    let errs = errors(&text);
    let has = |place: &str, text: &str| {
        errs.iter()
            .any(|e| e.starts_with(place) && e.contains(text))
    };
    assert!(
        has("source.columns[4].type", "unknown type \"decmal(12,3)\""),
        "{errs:#?}"
    );
    assert!(
        has("source.columns[1].rules[0].pattern", "invalid regex"),
        "{errs:#?}"
    );
    assert!(has("source.timezone", "unknown timezone"), "{errs:#?}");
    assert!(
        has("source.row_rules[0].check", "no_such_column"),
        "{errs:#?}"
    );
    assert!(
        has("silver.key[1]", "unknown column \"meter\""),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 5, "{errs:#?}");
}

#[test]
fn unknown_keys_are_errors_with_places() {
    let text = SAMPLE
        .replace("    trim: true\n", "    trim: true\n    trimm: false\n")
        .replace("      required: true\n      rules:\n        - name: customer_id_format", "      required: true\n      requird: true\n      rules:\n        - name: customer_id_format");
    let errs = errors(&text);
    assert!(
        errs.contains(&"source.csv.trimm: unknown key".to_string()),
        "{errs:#?}"
    );
    assert!(
        errs.contains(&"source.columns[0].requird: unknown key".to_string()),
        "{errs:#?}"
    );
}

#[test]
fn shape_errors_name_their_place() {
    let errs = errors(&SAMPLE.replace("required: true", "required: maybe"));
    assert!(
        errs[0].starts_with("source.columns[0].required"),
        "{errs:#?}"
    );
    let errs = errors("lakehouse: x\n");
    assert!(errs[0].starts_with("sources: no source"), "{errs:#?}");
}

#[test]
fn rule_and_default_errors() {
    let text = SAMPLE
        .replace("default: actual", "default: actual\n      format: '%Y'")
        .replace("min: 0", "min: zero")
        .replace("check: usage_kwh <= 100", "check: usage_kwh + 1");
    let errs = errors(&text);
    let has = |place: &str| errs.iter().any(|e| e.starts_with(place));
    assert!(has("source.columns[5].format"), "{errs:#?}");
    assert!(has("source.columns[4].rules[0].min"), "{errs:#?}");
    assert!(has("source.row_rules[1].check"), "{errs:#?}");
}

#[test]
fn key_columns_must_be_required() {
    let errs = errors(&SAMPLE.replace(
        "key: [customer_id, meter_id, start_time]",
        "key: [customer_id, reading_type]",
    ));
    assert!(
        errs.iter()
            .any(|e| e.starts_with("silver.key[1]") && e.contains("required")),
        "{errs:#?}"
    );
}

#[test]
fn gold_sql_is_planned_and_keys_checked() {
    let errs = errors(&SAMPLE.replace(
        "keys: [customer_id, usage_date]",
        "keys: [customer_id, day]",
    ));
    assert!(
        errs.iter().any(|e| e.starts_with("gold[0].keys[1]")),
        "{errs:#?}"
    );
    let errs = errors(&SAMPLE.replace("FROM silver", "FROM silverr"));
    assert!(
        errs.iter().any(|e| e.starts_with("gold[0].sql")),
        "{errs:#?}"
    );
}

#[test]
fn csv_options_are_checked() {
    let errs = errors(&SAMPLE.replace("delimiter: \",\"", "delimiter: \";;\""));
    assert!(
        errs.iter().any(|e| e.starts_with("source.csv.delimiter")),
        "{errs:#?}"
    );
}

#[test]
fn object_store_locations_resolve_with_their_own_options() {
    let text = SAMPLE
        .replace(
            "lakehouse: lakehouse",
            "lakehouse: gs://lake-bucket/meters\nstorage_options:\n  google_service_account: /keys/sa.json",
        )
        .replace(
            "  raw_dir: raw",
            "  raw_dir: abfss://landing@acct.dfs.core.windows.net/exports\n  storage_options:\n    azure_storage_account_key: k",
        );
    let p = load(&text).unwrap();
    assert_eq!(p.lakehouse.url.as_str(), "gs://lake-bucket/meters/");
    assert_eq!(
        p.lakehouse
            .options
            .as_map()
            .get("google_service_account")
            .map(String::as_str),
        Some("/keys/sa.json")
    );
    assert_eq!(
        p.source.raw_zone.url.as_str(),
        "abfss://landing@acct.dfs.core.windows.net/exports/"
    );
    assert!(
        p.source
            .raw_zone
            .options
            .as_map()
            .contains_key("azure_storage_account_key")
    );
    // A raw_dir inside the lakehouse is reached with the lakehouse's options.
    let inside = load(&SAMPLE.replace("lakehouse: lakehouse", "lakehouse: s3://lake/x")).unwrap();
    assert_eq!(inside.source.raw_zone.url.as_str(), "s3://lake/x/raw/");
}

#[test]
fn location_problems_are_config_errors() {
    let text = SAMPLE
        .replace(
            "lakehouse: lakehouse",
            "lakehouse: s3://lake/x\nstorage_options:\n  aws_secret_access_key: ${MEDALLION_SURELY_UNSET_VAR}",
        )
        .replace("  raw_dir: raw", "  raw_dir: raw\n  storage_options:\n    k: v");
    let errs = errors(&text);
    assert!(
        errs.iter()
            .any(|e| e.starts_with("storage_options.aws_secret_access_key")
                && e.contains("MEDALLION_SURELY_UNSET_VAR is not set")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.starts_with("source.storage_options") && e.contains("raw_dir of its own")),
        "{errs:?}"
    );
    let errs = errors(&SAMPLE.replace("lakehouse: lakehouse", "lakehouse: hdfs://nn/lake"));
    assert!(errs.iter().any(|e| e.contains("not supported")), "{errs:?}");
}

#[test]
fn zorder_columns_default_to_the_keys_and_unknown_ones_are_reported_together() {
    let p = load(SAMPLE).unwrap();
    assert_eq!(p.source.zorder_by, p.source.key);
    assert_eq!(p.gold[0].zorder_by, ["customer_id", "usage_date"]);

    let configured = SAMPLE
        .replace(
            "  key: [customer_id, meter_id, start_time]\n",
            "  key: [customer_id, meter_id, start_time]\n  zorder_by: [meter_id, start_time]\n",
        )
        .replace(
            "    keys: [customer_id, usage_date]\n",
            "    keys: [customer_id, usage_date]\n    zorder_by: [usage_date]\n",
        );
    let p = load(&configured).unwrap();
    assert_eq!(p.source.zorder_by, ["meter_id", "start_time"]);
    assert_eq!(p.gold[0].zorder_by, ["usage_date"]);

    let errs = errors(
        &configured
            .replace(
                "zorder_by: [meter_id, start_time]",
                "zorder_by: [meter, meter_id, meter_id]",
            )
            .replace("zorder_by: [usage_date]", "zorder_by: [usage_day]"),
    );
    let has = |place: &str, text: &str| {
        errs.iter()
            .any(|e| e.starts_with(place) && e.contains(text))
    };
    assert!(
        has("silver.zorder_by[0]", "unknown column \"meter\""),
        "{errs:#?}"
    );
    assert!(has("silver.zorder_by[2]", "listed twice"), "{errs:#?}");
    assert!(
        has("gold[0].zorder_by[0]", "unknown column \"usage_day\""),
        "{errs:#?}"
    );
    assert_eq!(errs.len(), 3, "{errs:#?}");

    let errs = errors(&configured.replace("zorder_by: [usage_date]", "zorder_by: []"));
    assert!(
        errs.iter().any(|e| e.starts_with("gold[0].zorder_by")),
        "{errs:#?}"
    );
}

#[test]
fn deletion_vectors_are_off_by_default_and_only_for_an_upsert_by_key() {
    assert!(!load(SAMPLE).unwrap().source.deletion_vectors);
    let on = SAMPLE.replace(
        "  key: [customer_id, meter_id, start_time]\n",
        "  key: [customer_id, meter_id, start_time]\n  deletion_vectors: true\n",
    );
    assert!(load(&on).unwrap().source.deletion_vectors);
    let sequenced = on.replace("source:\n", "source:\n  sequence_by: start_time\n");
    let errs = errors(&sequenced);
    assert!(
        errs.iter().any(|e| e.starts_with("silver.deletion_vectors")
            && e.contains("sequence_by or delete_when")),
        "{errs:#?}"
    );
}
