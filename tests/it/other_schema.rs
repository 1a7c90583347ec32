//! A second, unrelated source configured by YAML alone: weather observations with a
//! semicolon delimiter, untidy headers, a 7-digit fractional timestamp format, local
//! time in Europe/Berlin, NA tokens, int/double/bool/date columns and its own gold model.

use crate::workdir::{Workdir, text};

const CONFIG: &str = r#"
lakehouse: lake
source:
  name: weather
  raw_dir: landing
  pattern: "obs_*.txt"
  timezone: Europe/Berlin
  csv:
    delimiter: ";"
    null_values: ["", "NA", "Null"]
  columns:
    - name: station
      source: "Station ID"
      type: string
      required: true
      rules:
        - { name: station_code, pattern: '^[A-Z]{3}\d$' }
    - name: observed_at
      source: "Observed (local) "
      type: timestamp
      format: "%Y-%m-%d %H:%M:%S%.f"
      required: true
    - name: temp_c
      source: "Temp °C"
      type: double
      rules:
        - { name: temp_plausible, min: -60, max: 60 }
    - name: humidity
      type: int
      rules:
        - { name: humidity_pct, min: 0, max: 100 }
    - name: calibrated
      type: bool
      default: "false"
    - name: service_date
      type: date
      format: "%d.%m.%Y"
  row_rules:
    - name: calibrated_needs_service_date
      check: NOT calibrated OR service_date IS NOT NULL
silver:
  key: [station, observed_at]
gold:
  - name: station_daily
    keys: [station, day]
    sql: |
      SELECT station, CAST(observed_at AS DATE) AS day, AVG(temp_c) AS avg_temp,
             MAX(humidity) AS max_humidity, COUNT(*) AS n
      FROM silver GROUP BY station, CAST(observed_at AS DATE)
  - name: arrivals
    keys: [day]
    sql: |
      SELECT CAST(received_at AS DATE) AS day, COUNT(*) AS n
      FROM silver GROUP BY CAST(received_at AS DATE)
"#;

const DATA: &str = "Station ID;Observed (local) ;Temp °C;humidity;calibrated;service_date
BER1;2026-01-10 00:30:00.0000000;-2.5;81;true;01.12.2025
BER1;2026-01-10 01:30:00.0000000;-3.0;NA;;
HAM2;2026-01-10 00:30:00.0000000;4.25;90;false;
HAM2;2026-01-10 01:30:00.0000000;99;90;false;
xx;2026-01-10 01:30:00.0000000;1;50;false;
HAM2;2026-01-10 02:30:00.0000000;4.0;101;yes;
MUC3;2026-03-29 02:30:00.0000000;1.0;70;no;
MUC3;2026-01-10 23:30:00.0000000;1.5;70;no;
";

#[test]
fn second_schema_from_config_alone() {
    let w = Workdir::with_config(CONFIG);
    std::fs::create_dir_all(w.root.join("lake/landing")).unwrap();
    std::fs::write(w.root.join("lake/landing/obs_1.txt"), DATA).unwrap();
    std::fs::write(
        w.root.join("lake/landing/ignored.csv"),
        "not matched by the pattern",
    )
    .unwrap();
    let r = w.run_expect(0);
    assert!(r.stdout.contains("loaded obs_1.txt"), "{r:?}");
    assert_eq!(w.count("FROM bronze.weather"), 8);
    assert_eq!(w.count("FROM silver.weather"), 4);
    assert_eq!(w.count("FROM rejected.weather"), 4);
    let rules = w.query(
        "SELECT _source_line AS line, get_field(r, 'rule') AS rule FROM \
         (SELECT _source_line, unnest(rejection_reasons) AS r FROM rejected.weather) ORDER BY 1, 2",
    );
    let got: Vec<String> = rules
        .iter()
        .map(|r| format!("{}:{}", text(&r["line"]), text(&r["rule"])))
        .collect();
    assert_eq!(
        got,
        [
            "5:temp_plausible",
            "6:station_code",
            "7:calibrated_needs_service_date",
            "7:humidity_pct",
            "8:type"
        ]
    );
    let dst = w.query("SELECT get_field(r, 'message') AS m FROM (SELECT unnest(rejection_reasons) AS r FROM rejected.weather WHERE _source_line = 8)");
    assert!(
        text(&dst[0]["m"]).contains("does not exist in Europe/Berlin"),
        "{dst:?}"
    );
    // Local Berlin time 00:30 on 10 Jan is 23:30 UTC on 9 Jan.
    let ts = w.scalar("SELECT CAST(observed_at AS VARCHAR) FROM silver.weather WHERE station = 'BER1' AND humidity = 81");
    assert!(ts.starts_with("2026-01-09T23:30:00"), "{ts}");
    assert_eq!(w.scalar("SELECT CAST(calibrated AS VARCHAR) FROM silver.weather WHERE station = 'BER1' AND humidity IS NULL"), "false");
    let model = "SELECT station, CAST(observed_at AS DATE) AS day, AVG(temp_c) AS avg_temp, MAX(humidity) AS max_humidity, COUNT(*) AS n FROM silver GROUP BY station, CAST(observed_at AS DATE)";
    assert_eq!(
        w.gold_recompute_diff("gold.station_daily", model, "silver.weather"),
        0
    );
    assert_eq!(w.count("FROM gold.station_daily"), 4);
    // BER1's readings at 00:30 and 01:30 Berlin time on 10 Jan are on 9 and 10 Jan, UTC.
    assert_eq!(
        w.scalar(
            "SELECT CAST(MIN(day) AS VARCHAR) || ' ' || CAST(MAX(day) AS VARCHAR) \
             FROM gold.station_daily WHERE station = 'BER1'"
        ),
        "2026-01-09 2026-01-10"
    );

    // A later file: both models are maintained by keys, one of them keyed by the date
    // of a column that cannot be null (`received_at`).
    std::fs::write(
        w.root.join("lake/landing/obs_2.txt"),
        "Station ID;Observed (local) ;Temp °C;humidity;calibrated;service_date\n\
         BER1;2026-01-10 01:00:00.0000000;-1.0;80;false;\n\
         HAM2;2026-01-11 12:00:00.0000000;5.0;85;false;\n",
    )
    .unwrap();
    let r = w.run_expect(0);
    assert!(r.stdout.contains("loaded obs_2.txt"), "{r:?}");
    assert_eq!(
        w.gold_recompute_diff("gold.station_daily", model, "silver.weather"),
        0
    );
    let arrivals = "SELECT CAST(received_at AS DATE) AS day, COUNT(*) AS n FROM silver GROUP BY CAST(received_at AS DATE)";
    assert_eq!(
        w.gold_recompute_diff("gold.arrivals", arrivals, "silver.weather"),
        0
    );
    assert_eq!(
        w.scalar("SELECT CAST(SUM(n) AS VARCHAR) FROM gold.arrivals"),
        "6"
    );
}
