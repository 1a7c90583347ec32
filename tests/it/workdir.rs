//! `Workdir`: a temporary project folder (config + raw zone) and helpers that run the
//! real binary in it and read tables back through `medallion query --format json`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

pub struct Workdir {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
    /// Environment for every medallion process (credentials for `${VAR}` options).
    pub env: Vec<(String, String)>,
    /// The lakehouse and raw zone on an object-store emulator, when not local.
    pub remote: Option<crate::remote::Remote>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The reason printed under `FAILED <file>` in the run summary (panics when the
    /// file did not fail).
    pub fn failure_of(&self, file: &str) -> &str {
        let at = self
            .stdout
            .find(&format!("FAILED {file}\n"))
            .unwrap_or_else(|| panic!("{file} should fail: {self:?}"));
        self.stdout[at..].lines().nth(1).unwrap_or_default()
    }

    pub fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Workdir {
    /// An empty project folder with `config` as its config.yaml.
    pub fn with_config(config: &str) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("lakehouse/raw")).unwrap();
        std::fs::write(root.join("config.yaml"), config).unwrap();
        Workdir {
            _dir: dir,
            root,
            env: Vec::new(),
            remote: None,
        }
    }

    /// Replace config.yaml.
    pub fn set_config(&self, config: &str) {
        std::fs::write(self.root.join("config.yaml"), config).unwrap();
    }

    /// The repository's config.yaml, with an empty raw zone.
    pub fn sample_config() -> Self {
        Self::with_config(
            &std::fs::read_to_string(Path::new(REPO).join("examples/readings.yaml")).unwrap(),
        )
    }

    /// Copy a bundled sample file into the raw zone.
    pub fn add_sample(&self, name: &str) {
        let bytes = std::fs::read(Path::new(REPO).join("lakehouse/raw").join(name)).unwrap();
        self.write_raw_bytes(name, &bytes);
    }

    pub fn raw(&self) -> PathBuf {
        self.root.join("lakehouse/raw")
    }

    pub fn write_raw(&self, name: &str, content: &str) {
        self.write_raw_bytes(name, content.as_bytes());
    }

    /// A raw file, on the local raw zone or in the emulator's landing bucket.
    pub fn write_raw_bytes(&self, name: &str, content: &[u8]) {
        match &self.remote {
            Some(remote) => remote.put_raw(name, content),
            None => std::fs::write(self.raw().join(name), content).unwrap(),
        }
    }

    /// Every object under the lakehouse root, by path relative to it.
    pub fn lake_files(&self) -> Vec<String> {
        match &self.remote {
            Some(remote) => remote.lake_files(),
            None => crate::remote::local_files(&self.root.join("lakehouse")),
        }
    }

    /// An object under the lakehouse root.
    pub fn read_lake(&self, relative: &str) -> Vec<u8> {
        match &self.remote {
            Some(remote) => remote.read_lake(relative),
            None => std::fs::read(self.root.join("lakehouse").join(relative)).unwrap(),
        }
    }

    /// A `medallion` command with `args`, the config and the environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_medallion"));
        cmd.args(args)
            .arg("--config")
            .arg(self.root.join("config.yaml"))
            .current_dir(&self.root)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            // Never a real cloud: no instance-metadata credential lookups.
            .env("AWS_EC2_METADATA_DISABLED", "true");
        cmd
    }

    pub fn table_path(&self, relative: &str) -> PathBuf {
        self.root.join("lakehouse").join(relative)
    }

    /// Runs that do not track a batch's repeated keys while staging it (as past its
    /// bound), so the slices' own checks for repeated keys are exercised.
    pub fn without_repeat_tracking(mut self) -> Self {
        self.env
            .push(("MEDALLION_REPEATS_MAX_NOTED".into(), "0".into()));
        self
    }

    /// Run the binary with `args` (the config is passed for you).
    pub fn medallion(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run medallion");
        let run = Run::from(out);
        if let Some(remote) = &self.remote {
            remote.record_output(&run.stdout, &run.stderr);
        }
        run
    }

    /// Run the binary with `args`, aborting at the fail point `failpoint` (tests only).
    pub fn medallion_failing_at(&self, args: &[&str], failpoint: &str) -> Run {
        let out = self
            .command(args)
            .env("MEDALLION_FAILPOINT", failpoint)
            .output()
            .expect("run medallion");
        let run = Run::from(out);
        if let Some(remote) = &self.remote {
            remote.record_output(&run.stdout, &run.stderr);
        }
        run
    }

    /// `medallion run`, asserting it exits with `code`.
    pub fn run_expect(&self, code: i32) -> Run {
        let r = self.medallion(&["run"]);
        assert_eq!(r.code, code, "{r:?}");
        r
    }

    /// The newest version of `table` (`zone.name`), from `history --json`.
    pub fn newest_version(&self, table: &str) -> i64 {
        let h = self.medallion(&["history", table, "--json"]);
        let doc: Value = serde_json::from_str(&h.stdout).unwrap_or_else(|e| panic!("{e}: {h:?}"));
        doc["commits"][0]["version"]
            .as_i64()
            .unwrap_or_else(|| panic!("no version in {h:?}"))
    }

    /// Rows of a query as JSON objects.
    pub fn query(&self, sql: &str) -> Vec<serde_json::Map<String, Value>> {
        self.query_as_of(sql, None)
    }

    pub fn query_as_of(
        &self,
        sql: &str,
        as_of: Option<&str>,
    ) -> Vec<serde_json::Map<String, Value>> {
        let mut args = vec!["query", sql, "--format", "json"];
        if let Some(v) = as_of {
            args.extend(["--as-of", v]);
        }
        let r = self.medallion(&args);
        assert_eq!(r.code, 0, "query failed: {sql}\n{r:?}");
        r.stdout
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| match serde_json::from_str::<Value>(l) {
                Ok(Value::Object(m)) => m,
                other => panic!("not a JSON object: {l}: {other:?}"),
            })
            .collect()
    }

    /// A single number from a one-row, one-column query.
    pub fn scalar(&self, sql: &str) -> String {
        let rows = self.query(sql);
        assert_eq!(rows.len(), 1, "{sql}: {rows:?}");
        let v = rows[0].values().next().cloned().unwrap_or(Value::Null);
        text(&v)
    }

    pub fn count(&self, sql_from_where: &str) -> u64 {
        self.scalar(&format!("SELECT COUNT(*) AS n {sql_from_where}"))
            .parse()
            .unwrap()
    }

    /// Rows of `gold_table` that differ from `sql` run over the current tables (both ways).
    pub fn gold_sql_diff(&self, gold_table: &str, sql: &str) -> u64 {
        self.count(&format!(
            "FROM ((SELECT * FROM {gold_table} EXCEPT ALL SELECT * FROM ({sql}) m1) \
             UNION ALL (SELECT * FROM ({sql}) m2 EXCEPT ALL SELECT * FROM {gold_table})) d"
        ))
    }

    /// Rows of gold that differ from a full recompute of the model over silver (both ways).
    pub fn gold_recompute_diff(
        &self,
        gold_table: &str,
        model_sql: &str,
        silver_table: &str,
    ) -> u64 {
        let model = model_sql.replace("FROM silver", &format!("FROM {silver_table}"));
        self.gold_sql_diff(gold_table, &model)
    }
}

/// Per loaded file (of any batch), with its latest counts (a rebuild's `recounted` row
/// wins over the `loaded` row): rows read = bronze rows = silver-accepted + rejected,
/// and the ledger's rejected count is the rejected table's; silver holds one row per key.
pub fn assert_batch_counts_and_unique_keys(w: &Workdir) {
    assert_source_counts(w, "readings", &["customer_id", "meter_id", "start_time"]);
}

/// [`assert_batch_counts_and_unique_keys`] for source `source` with silver key `key`
/// (none: an append source, whose silver may repeat rows).
pub fn assert_source_counts(w: &Workdir, source: &str, key: &[&str]) {
    let per_batch = w.query(&format!(
        "SELECT l._batch_id AS b, l.rows_read AS rd, l.silver_accepted AS acc, l.rejected AS rej_l, \
         (SELECT COUNT(*) FROM bronze.{source} x WHERE x._batch_id = l._batch_id AND x._source_file = l.file) AS bronze, \
         (SELECT COUNT(*) FROM rejected.{source} r WHERE r._batch_id = l._batch_id AND r._source_file = l.file) AS rej \
         FROM _medallion.files l WHERE l.source = '{source}' AND l.status IN ('loaded', 'recounted') AND l.processed_at = \
         (SELECT MAX(x.processed_at) FROM _medallion.files x WHERE x._batch_id = l._batch_id \
          AND x.file = l.file AND x.status IN ('loaded', 'recounted'))",
    ));
    assert!(!per_batch.is_empty(), "no loaded batch");
    for b in &per_batch {
        let n = |k: &str| text(&b[k]).parse::<u64>().unwrap();
        assert_eq!(n("rd"), n("bronze"), "rows read = bronze: {b:?}");
        assert_eq!(
            n("rej_l"),
            n("rej"),
            "ledger's rejected = rejected rows: {b:?}"
        );
        assert_eq!(
            n("bronze"),
            n("acc") + n("rej"),
            "bronze = accepted + rejected: {b:?}"
        );
    }
    if key.is_empty() {
        return;
    }
    let key = key.join(", ");
    let dupes = w.count(&format!(
        "FROM (SELECT {key} FROM silver.{source} GROUP BY {key} HAVING COUNT(*) > 1) d",
    ));
    assert_eq!(dupes, 0, "silver.{source} holds one row per natural key");
}

/// A tool the test command installs: the path in `env_var` (set by `scripts/test.sh`),
/// else the one line `script` prints after installing it (a failed install fails the test).
pub fn installed(env_var: &str, script: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var) {
        return PathBuf::from(p);
    }
    let out = Command::new("bash")
        .arg(Path::new(REPO).join(script))
        .output()
        .unwrap_or_else(|e| panic!("run {script}: {e}"));
    assert!(
        out.status.success(),
        "{script} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// A JSON value as plain text (strings unquoted).
pub fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// The sample's expected outcomes.
pub fn expected() -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(Path::new(REPO).join("tests/fixtures/sample_expected.json"))
            .unwrap(),
    )
    .unwrap()
}

/// The gold model SQL of the sample config.
pub fn sample_model_sql() -> String {
    let cfg = std::fs::read_to_string(Path::new(REPO).join("examples/readings.yaml")).unwrap();
    let start = cfg.find("SELECT customer_id").unwrap();
    cfg[start..].trim().to_string()
}
