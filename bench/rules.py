"""The rules of a medallion config.yaml, for the Python peers of the benchmark.

Loads the same configuration file medallion reads and gives the DuckDB and Polars
implementations (bench/peers.py) one description of what medallion checks, so that the
peers follow the file rather than a copy of it. Only what the benchmark needs is
supported: a local lakehouse, the UTC timezone, no `format:` on timestamp/date columns,
types string, int, bigint, double, decimal(p,s), bool, date and timestamp.

Semantics mirrored from medallion (crates/medallion-csv/src/values.rs, checks.rs,
src/zones/silver/validate.rs):

* values are trimmed (Unicode White_Space, like Rust's str::trim) when csv.trim is true;
  a value whose trimmed text is one of csv.null_values (case-sensitive) or that is absent
  is missing: the column's default applies (column rules are not checked on a default),
  otherwise a required column fails `required`;
* a present value that does not parse fails `type` (and is NULL for the row rules):
  decimal(p,s) is `[+-]?digits[.digits]` (either part may be empty, not both) with at
  most s decimals and p-s integer digits (leading zeros aside), never rounded; timestamps
  are RFC 3339 (`T`, `t` or space; `Z`/`z` or +hh:mm; optional fraction) or
  `YYYY-MM-DD[ T]HH:MM:SS[.f]` / `YYYY-MM-DD HH:MM` read as UTC;
* column rules apply to parsed, non-default values: `pattern` is an unanchored regex
  search over the (trimmed) text, `min`/`max` inclusive in the column type, `allowed`
  exact text;
* every row rule (SQL over the typed row) is evaluated on every row, NULL passes;
* `reject` rules reject the row (every failure is listed), `warn` rules are counted on
  kept rows only, `fail` stops the file.
"""

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

# Rust's char::is_whitespace (Unicode White_Space): what str::trim removes.
WHITESPACE = ("\t\n\x0b\x0c\r \x85\xa0\u1680" + "".join(chr(c) for c in range(0x2000, 0x200B))
              + "\u2028\u2029\u202f\u205f\u3000")

# Timestamp spellings accepted by medallion's parser without a `format:` (chrono 0.4):
# RFC 3339 with an offset, or a naive date-time read in the source timezone. Two-digit
# fields only: chrono's strftime parser also takes one-digit fields and missing spaces in
# the naive forms, and a leap second :60; those are not generated and not mirrored.
_D = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
_T = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]"
TS_RFC3339 = _D + r"[Tt ]" + _T + r":[0-5][0-9](?:\.[0-9]+)?(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
TS_NAIVE = _D + r"[T ]" + _T + r":[0-5][0-9](?:\.[0-9]+)?"
TS_NAIVE_MIN = _D + " " + _T
TS_ANY = "^(?:" + TS_RFC3339 + "|" + TS_NAIVE + "|" + TS_NAIVE_MIN + ")$"
DATE_RE = "^" + _D + "$"
INT_RE = "^[+-]?[0-9]+$"
BOOL_TRUE = ["true", "t", "yes", "y", "1"]
BOOL_FALSE = ["false", "f", "no", "n", "0"]


def decimal_res(precision, scale):
    """(syntax, fits) regexes of medallion's parse_decimal, ASCII digits only."""
    syntax = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)$"
    fits = r"^[+-]?0*[0-9]{0,%d}(?:\.[0-9]{0,%d})?$" % (precision - scale, scale)
    return syntax, fits


@dataclass
class ColType:
    kind: str  # string int bigint double decimal bool date timestamp
    precision: int = 0
    scale: int = 0

    @staticmethod
    def parse(text):
        t = text.strip().lower()
        if t in ("string", "int", "bigint", "double", "bool", "date", "timestamp"):
            return ColType(t)
        m = re.fullmatch(r"decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)", t)
        if m:
            return ColType("decimal", int(m.group(1)), int(m.group(2)))
        raise ValueError(f"unknown type {text!r}")

    def duckdb(self):
        return {"string": "VARCHAR", "int": "INTEGER", "bigint": "BIGINT", "double": "DOUBLE",
                "bool": "BOOLEAN", "date": "DATE", "timestamp": "TIMESTAMPTZ",
                "decimal": f"DECIMAL({self.precision},{self.scale})"}[self.kind]


@dataclass
class Rule:
    name: str
    kind: str  # pattern | range | allowed
    action: str
    pattern: str = ""
    min: object = None
    max: object = None
    allowed: list = field(default_factory=list)


@dataclass
class Column:
    name: str
    source: str
    type: ColType
    required: bool
    default: object  # text or None
    rules: list


@dataclass
class RowRule:
    name: str
    check: str
    action: str


@dataclass
class Gold:
    name: str
    keys: list
    sql: str


@dataclass
class Spec:
    config_path: Path
    lakehouse: str
    source: str
    raw_dir: str
    pattern: str
    delimiter: str
    quote: str
    header: bool
    trim: bool
    null_values: list
    columns: list
    row_rules: list
    key: list
    gold: list

    def discover(self, raw: Path):
        """Raw files matching the pattern, sorted by relative name: medallion's order."""
        out = []
        for p in raw.rglob("*"):
            if not p.is_file() or p.name.startswith("."):
                continue
            rel = p.relative_to(raw).as_posix()
            names = [rel, p.name]
            names += [n[:-3] for n in names if n.endswith(".gz")]
            if any(fnmatch.fnmatchcase(n, self.pattern) for n in names):
                out.append((rel, p))
        return sorted(out)

    def rule_names(self):
        names = {"required", "type"}
        for c in self.columns:
            names.update(r.name for r in c.rules if r.action == "reject")
        names.update(r.name for r in self.row_rules if r.action == "reject")
        return sorted(names)


def load(path):
    path = Path(path)
    cfg = yaml.safe_load(path.read_text())
    src = cfg["source"]
    if (src.get("timezone") or "UTC") != "UTC":
        raise SystemExit("bench peers support timezone UTC only")
    csv = src.get("csv") or {}
    cols = []
    for c in src["columns"]:
        if c.get("format"):
            raise SystemExit(f"bench peers do not support format: on column {c['name']}")
        ty = ColType.parse(c["type"])
        rules = []
        for r in c.get("rules") or []:
            action = r.get("action", "reject")
            if "pattern" in r:
                rules.append(Rule(r["name"], "pattern", action, pattern=r["pattern"]))
            elif "allowed" in r:
                rules.append(Rule(r["name"], "allowed", action,
                                  allowed=[str(v) for v in r["allowed"]]))
            else:
                rules.append(Rule(r["name"], "range", action, min=r.get("min"), max=r.get("max")))
        default = c.get("default")
        cols.append(Column(c["name"], c.get("source") or c["name"], ty, bool(c.get("required")),
                           None if default is None else str(default), rules))
    row_rules = [RowRule(r["name"], r["check"], r.get("action", "reject"))
                 for r in src.get("row_rules") or []]
    gold = [Gold(g["name"], list(g["keys"]), g["sql"]) for g in cfg.get("gold") or []]
    return Spec(
        config_path=path,
        lakehouse=cfg["lakehouse"],
        source=src["name"],
        raw_dir=src.get("raw_dir", "raw"),
        pattern=src.get("pattern", "*.csv"),
        delimiter=csv.get("delimiter", ","),
        quote=csv.get("quote", '"'),
        header=csv.get("header", True),
        trim=csv.get("trim", True),
        null_values=[str(v) for v in csv.get("null_values", [""])],
        columns=cols,
        row_rules=row_rules,
        key=list(cfg["silver"]["key"]),
        gold=gold,
    )


def rust_regex_to_re2(pattern):
    """Rust's regex crate is Unicode-aware: \\d is any Unicode decimal digit. RE2 (DuckDB)
    is ASCII for \\d; spell it \\p{Nd} so both accept the same text."""
    return re.sub(r"(?<!\\)((?:\\\\)*)\\d", r"\1\\p{Nd}", pattern)
