#!/usr/bin/env python3
"""Generate the bundled sample data of medallion's reference source.

Writes (paths relative to the repository root):

  lakehouse/raw/readings_2026-01-01.csv              3 days of hourly readings + bad rows
  lakehouse/raw/readings_2026-01-04_corrections.csv  new readings, corrections, a duplicate, bad rows
  lakehouse/raw/customers_2026-01-01.csv             customers snapshot 1 (one bad row)
  lakehouse/raw/customers_2026-01-04.csv             customers snapshot 2: a move, a delete, a new id
  lakehouse/raw/SAMPLE.md                            human description, every bad row listed
  tests/fixtures/sample_expected.json                exact expected outcomes

Python 3 standard library only. The output is deterministic: a fixed seed, integer
arithmetic only (no floating point, no libm), no dependence on hash ordering, and
"\\n" line endings, so rerunning produces byte-identical files.

The expected outcomes are NOT taken from the generator's intentions: after writing,
the CSV files are read back and validated by an independent Python implementation of
the rules in config.yaml (see `validate_file`, `validate_row`, `validate_customer_row`).
The generator's intentions (which rules each bad row should break, which rows warn) are
then asserted against it.

Usage: python3 scripts/make_sample.py
"""

import csv
import datetime as dt
import io
import json
import random
import re
from decimal import Decimal
from pathlib import Path

SEED = 20260101

ROOT = Path(__file__).resolve().parent.parent
RAW_DIR = ROOT / "lakehouse" / "raw"
FIXTURE = ROOT / "tests" / "fixtures" / "sample_expected.json"
FILE1 = "readings_2026-01-01.csv"
FILE2 = "readings_2026-01-04_corrections.csv"
CUST_FILE1 = "customers_2026-01-01.csv"
CUST_FILE2 = "customers_2026-01-04.csv"

HEADER = ["customer_id", "meter_id", "start_time", "end_time", "usage_kwh", "reading_type"]
CUST_HEADER = ["customer_id", "region", "tariff"]
UTC = dt.timezone.utc
HOUR = dt.timedelta(hours=1)
DAY1 = dt.datetime(2026, 1, 1, tzinfo=UTC)
DAY4 = dt.datetime(2026, 1, 4, tzinfo=UTC)

# ---------------------------------------------------------------------------
# Rendering helpers
# ---------------------------------------------------------------------------


def ts_z(t):
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def render_ts(t, style):
    """Spell the UTC instant t in one of the accepted spellings."""
    if style == "z":
        return ts_z(t)
    if style == "frac":  # RFC 3339 with fractional seconds
        return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    if style == "space":  # no offset: read in the source timezone (UTC)
        return t.strftime("%Y-%m-%d %H:%M:%S")
    if style.startswith("off"):  # e.g. "off+02:00"
        off = style[3:]
        sign = 1 if off[0] == "+" else -1
        hh, mm = int(off[1:3]), int(off[4:6])
        delta = sign * dt.timedelta(hours=hh, minutes=mm)
        local = t.astimezone(dt.timezone(delta))
        return local.strftime("%Y-%m-%dT%H:%M:%S") + off
    raise ValueError(style)


def kwh(wh):
    """Integer watt-hours -> decimal string with exactly 3 decimals."""
    assert wh >= 0
    return f"{wh // 1000}.{wh % 1000:03d}"


def q(v):
    return '"' + v.replace('"', '""') + '"'


def join(fields, quote_mode="none"):
    """fields: list of raw strings. quote_mode: none | rtype | all.
    Empty fields are never quoted (a quoted empty string is deliberately avoided)."""
    out = []
    for i, v in enumerate(fields):
        quote = v != "" and (quote_mode == "all" or (quote_mode == "rtype" and i == 5))
        out.append(q(v) if quote else v)
    return ",".join(out)


# ---------------------------------------------------------------------------
# Customers, meters and consumption model (integer arithmetic only)
# ---------------------------------------------------------------------------

# Hourly load profiles in percent of the meter's base load, index = UTC hour.
PROFILES = {
    "res": [45, 40, 38, 37, 38, 45, 70, 120, 140, 110, 90, 85,
            90, 85, 85, 95, 120, 160, 185, 175, 150, 120, 85, 60],
    "heat": [120, 125, 130, 130, 125, 120, 115, 110, 100, 90, 80, 75,
             70, 70, 75, 85, 100, 115, 120, 120, 118, 115, 115, 118],
    "biz": [30, 30, 30, 30, 30, 35, 60, 120, 180, 200, 200, 195,
            185, 195, 200, 195, 180, 140, 80, 50, 40, 35, 30, 30],
    "farm": [60, 60, 60, 60, 90, 180, 200, 150, 100, 90, 90, 90,
             90, 90, 90, 100, 180, 200, 150, 100, 80, 70, 60, 60],
    "vac": [100] * 24,
}
PROFILES["ev"] = PROFILES["res"]

# Day factor in percent, per kind, for 2026-01-01 (holiday), -02 (Fri), -03 (Sat), -04 (Sun).
DAY_FACTOR = {
    "biz": [55, 100, 60, 45],
    "farm": [100, 100, 100, 100],
}
DEFAULT_DAY_FACTOR = [110, 100, 105, 108]

# Base load range in Wh per kind.
BASE_RANGE = {
    "res": (250, 700),
    "heat": (900, 1600),
    "ev": (300, 600),
    "biz": (6000, 20000),
    "farm": (2000, 5000),
    "vac": (40, 120),
}

# One entry per customer: the kinds of its meters (12 customers, 30 meters).
CUSTOMER_METERS = [
    ["res"],
    ["vac"],
    ["res", "heat"],
    ["biz", "biz", "biz", "res"],
    ["res", "heat", "ev"],
    ["res"],
    ["res", "res"],
    ["biz", "biz", "res", "heat"],
    ["res", "res", "res"],
    ["res", "heat"],
    ["farm", "farm", "res", "heat"],
    ["res", "res", "heat"],
]


def expected_wh(meter, t):
    day = (t - DAY1).days
    factor = DAY_FACTOR.get(meter["kind"], DEFAULT_DAY_FACTOR)[day]
    return meter["base"] * PROFILES[meter["kind"]][t.hour] * factor // 10000


def measured_wh(rng, meter, t):
    """A realistic hourly reading in Wh for meter at hour t."""
    kind = meter["kind"]
    noise = rng.randint(80, 120)
    if kind == "vac":
        # Vacation home: standby only, often nothing at all in an hour.
        if rng.randint(0, 99) < 30:
            return 0
        return meter["base"] * noise // 100
    wh = expected_wh(meter, t) * noise // 100
    if kind == "ev" and t.hour in (0, 1, 2, 3) and (t - DAY1).days in (0, 2, 3):
        wh += 7200 * rng.randint(95, 100) // 100  # 7.2 kW wallbox charging overnight
    return wh


def make_customers(rng):
    cust_ids = sorted(rng.sample(range(100, 999999), len(CUSTOMER_METERS)))
    n_meters = sum(len(k) for k in CUSTOMER_METERS)
    # A few extra meter ids, never used by good rows, for the bad rows.
    meter_ids = rng.sample(range(10000, 3000000), n_meters + 30)
    good_ids, spare_ids = sorted(meter_ids[:n_meters]), sorted(meter_ids[n_meters:])
    customers, meters = [], []
    it = iter(good_ids)
    for cid, kinds in zip(cust_ids, CUSTOMER_METERS):
        c = {"id": f"C{cid:06d}", "meters": []}
        for kind in kinds:
            lo, hi = BASE_RANGE[kind]
            m = {"id": f"M{next(it):08d}", "customer": c["id"], "kind": kind,
                 "base": rng.randint(lo, hi)}
            c["meters"].append(m)
            meters.append(m)
        customers.append(c)
    spares = [f"M{i:08d}" for i in spare_ids]
    return customers, meters, spares


# ---------------------------------------------------------------------------
# Good rows of the first file
# ---------------------------------------------------------------------------


def new_reading(meter, t, wh, rtype):
    return {"customer": meter["customer"], "meter": meter["id"], "start": t,
            "wh": wh, "rtype": rtype, "token": rtype, "ts_style": "z",
            "end_style": None, "quote": "none", "usage_fmt": "fixed", "pad": False,
            "tags": []}


def render_reading(r):
    start = render_ts(r["start"], r["ts_style"])
    end = render_ts(r["start"] + HOUR, r["end_style"] or r["ts_style"])
    usage = kwh(r["wh"])
    if r["usage_fmt"] == "strip":  # e.g. "1.2" or "2" instead of "1.200" / "2.000"
        usage = usage.rstrip("0").rstrip(".")
    cust, meter = r["customer"], r["meter"]
    if r["pad"]:  # whitespace around unquoted fields: trimmed by the reader
        cust, usage = cust + " ", "  " + usage
    return join([cust, meter, start, end, usage, r["token"]], r["quote"])


def make_file1_good(rng, customers, meters):
    rows = []
    by_meter = {}
    for m in meters:
        by_meter[m["id"]] = []
        for h in range(72):
            t = DAY1 + h * HOUR
            r = new_reading(m, t, measured_wh(rng, m, t), "actual")
            rows.append(r)
            by_meter[m["id"]].append(r)

    # Estimated readings: communication outages of whole hour ranges per meter, the
    # utility fills them with the expected (profile) value rounded to 10 Wh.
    n_est_target = len(rows) * 5 // 100
    n_est = 0
    used = set()
    while n_est < n_est_target:
        mi = rng.randrange(len(meters))
        if mi in used or meters[mi]["kind"] == "vac":
            continue
        used.add(mi)
        length = min(rng.randint(8, 24), n_est_target - n_est + 3)
        first = rng.randint(0, 72 - length)
        for r in by_meter[meters[mi]["id"]][first:first + length]:
            r["rtype"] = r["token"] = "estimated"
            r["wh"] = expected_wh(meters[mi], r["start"]) // 10 * 10
            n_est += 1

    for r in rows:
        assert r["wh"] < 100000, "only planted rows may exceed 100 kWh"

    def meter_of(ci, mi):
        return customers[ci]["meters"][mi]

    def row_of(meter, when):
        return by_meter[meter["id"]][int((when - DAY1) / HOUR)]

    # --- Planted rows with a known role -------------------------------------
    # Two implausible but accepted readings (warn rule plausible_hourly_usage).
    w1 = row_of(meter_of(3, 1), dt.datetime(2026, 1, 2, 11, tzinfo=UTC))
    w1["wh"], w1["rtype"], w1["token"] = 248900, "actual", "actual"
    w1["tags"].append("warn: meter glitch (corrected in the corrections file)")
    w2 = row_of(meter_of(7, 0), dt.datetime(2026, 1, 3, 14, tzinfo=UTC))
    w2["wh"], w2["rtype"], w2["token"] = 137250, "actual", "actual"
    w2["tags"].append("warn: implausible hourly usage, kept")
    # Boundary: exactly 100 kWh passes the warn rule (usage_kwh <= 100).
    b100 = row_of(meter_of(10, 0), dt.datetime(2026, 1, 2, 6, tzinfo=UTC))
    b100["wh"], b100["rtype"], b100["token"] = 100000, "actual", "actual"
    b100["tags"].append("boundary: exactly 100.000, not warned")

    # The spellings from the brief: 2026-01-02 05:00:00 and 2026-01-02T07:00:00+02:00.
    sp = row_of(meter_of(2, 0), dt.datetime(2026, 1, 2, 5, tzinfo=UTC))
    sp["ts_style"] = "space"
    sp["tags"].append("start_time without offset")
    of = row_of(meter_of(2, 1), dt.datetime(2026, 1, 2, 5, tzinfo=UTC))
    of["ts_style"] = "off+02:00"
    of["tags"].append("start_time with +02:00 offset")
    # Offsets whose local date differs from the UTC date (gold groups by UTC date).
    x1 = row_of(meter_of(4, 0), dt.datetime(2026, 1, 1, 23, tzinfo=UTC))
    x1["ts_style"] = "off+02:00"  # 2026-01-02T01:00:00+02:00, UTC date 2026-01-01
    x1["tags"].append("local date 2026-01-02, UTC date 2026-01-01")
    x2 = row_of(meter_of(6, 1), dt.datetime(2026, 1, 3, 0, tzinfo=UTC))
    x2["ts_style"] = "off-05:00"  # 2026-01-02T19:00:00-05:00, UTC date 2026-01-03
    x2["tags"].append("local date 2026-01-02, UTC date 2026-01-03")
    # start and end spelled differently within one row.
    mx = row_of(meter_of(8, 2), dt.datetime(2026, 1, 1, 9, tzinfo=UTC))
    mx["ts_style"], mx["end_style"] = "z", "space"
    mx["tags"].append("start_time RFC 3339, end_time without offset")
    planted = {id(r) for r in (w1, w2, b100, sp, of, x1, x2, mx)}

    # --- Random variety ------------------------------------------------------
    pool = [r for r in rows if id(r) not in planted]
    picks = rng.sample(range(len(pool)), 40)
    for i in picks[:22]:
        pool[i]["ts_style"] = "space"
    for i in picks[22:30]:
        pool[i]["ts_style"] = "off" + rng.choice(["+01:00", "+02:00", "-05:00", "+05:30"])
    for i in picks[30:32]:
        pool[i]["ts_style"] = "frac"
    # Null tokens in reading_type (default: actual) only on actual rows.
    actual_pool = [r for r in pool if r["rtype"] == "actual"]
    tokens = [""] * 8 + ["NA", "NA", "Null"]
    for r, tok in zip(rng.sample(actual_pool, len(tokens)), tokens):
        r["token"] = tok
    for i in rng.sample(range(len(pool)), 60):
        pool[i]["quote"] = "rtype"
    for i in rng.sample(range(len(pool)), 20):
        pool[i]["quote"] = "all"
    for i in rng.sample(range(len(pool)), 80):
        pool[i]["usage_fmt"] = "strip"
    for i in rng.sample(range(len(pool)), 5):
        if pool[i]["quote"] == "none":
            pool[i]["pad"] = True

    rows.sort(key=lambda r: (r["start"], r["customer"], r["meter"]))
    return rows, by_meter, {"w1": w1, "w2": w2, "b100": b100, "sp": sp, "of": of,
                            "x1": x1, "x2": x2, "mx": mx}


# ---------------------------------------------------------------------------
# Bad rows
# ---------------------------------------------------------------------------


def bad(line_fields, expect, what, quote="none"):
    return {"text": join(line_fields, quote), "expect": sorted(expect), "what": what}


def make_file1_bad(customers, spares):
    c = [cu["id"] for cu in customers]
    s = iter(spares)

    def z(d, h):
        return ts_z(dt.datetime(2026, 1, d, h, tzinfo=UTC))

    def ok(cust, day, hour, usage="0.842", rtype="actual", meter=None):
        return [cust, meter or next(s), z(day, hour), z(day, hour + 1), usage, rtype]

    rows = []
    f = ok("", 1, 6)
    rows.append(bad(f, {"required"}, "customer_id empty"))
    f = ok(c[5], 1, 10, usage="NA")
    rows.append(bad(f, {"required"}, "usage_kwh is the null token NA"))
    f = ok(c[8], 1, 15)
    f[2] = ""
    rows.append(bad(f, {"required"}, "start_time empty (end_after_start is NULL, so it passes)"))
    f = ok(c[0], 1, 20)
    f[2] = "2026-13-45 99:00"
    rows.append(bad(f, {"type"}, "start_time unparsable (month 13, day 45, hour 99); "
                             "end_after_start is NULL, so it passes"))
    f = ok(c[9], 2, 2, usage="abc")
    rows.append(bad(f, {"type"}, "usage_kwh not a number"))
    f = ok(c[11], 2, 4, usage="1.2345")
    rows.append(bad(f, {"type"}, "usage_kwh has 4 decimals, decimal(12,3) allows 3"))
    f = ok("C12345", 2, 8)
    rows.append(bad(f, {"customer_id_format"}, "customer_id has 5 digits"))
    f = ok("X000001", 2, 9)
    rows.append(bad(f, {"customer_id_format"}, "customer_id prefix X instead of C"))
    f = ok(c[6], 2, 12, meter="M1234567")
    rows.append(bad(f, {"meter_id_format"}, "meter_id has 7 digits"))
    f = ok(c[2], 2, 16)
    f[1] = "m" + f[1][1:]
    rows.append(bad(f, {"meter_id_format"}, "meter_id lowercase prefix m"))
    f = ok(c[1], 2, 18, usage="-0.5")
    rows.append(bad(f, {"usage_kwh_range"}, "usage_kwh negative (-0.5 < min 0)"))
    f = ok(c[3], 2, 20, usage="612.000")
    rows.append(bad(f, {"usage_kwh_range"}, "usage_kwh 612.000 > max 500 (it is also > 100: "
                                            "the warn rule plausible_hourly_usage fails too, "
                                            "but a warning never rejects)"))
    f = ok(c[4], 2, 22, rtype="guess")
    rows.append(bad(f, {"reading_type_allowed"}, "reading_type 'guess' not in [actual, estimated]",
                    quote="rtype"))
    f = ok(c[10], 3, 1)
    f[3] = f[2]
    rows.append(bad(f, {"end_after_start"}, "end_time equal to start_time"))
    f = ok(c[7], 3, 10)
    f[3] = "2026-01-03 09:00:00"
    rows.append(bad(f, {"end_after_start"}, "end_time (09:00, no offset) one hour before "
                                            "start_time (10:00Z)"))
    f = ok("C00012", 3, 13, usage="-1.200")
    rows.append(bad(f, {"customer_id_format", "usage_kwh_range"},
                    "two rules: customer_id has 5 digits AND usage_kwh negative"))
    f = ok(c[0], 3, 17, rtype="guess")
    f[1] = "NULL"
    f[3] = "2026-01-02T25:00:00Z"
    rows.append(bad(f, {"required", "type", "reading_type_allowed"},
                    "three rules: meter_id is the null token NULL (required), end_time hour 25 "
                    "(type; end_after_start is then NULL and passes), reading_type 'guess'"))
    f = ok(c[9], 3, 21, meter="M123")
    f[2] = "2026-01-03T21:00:00Z"
    f[3] = "2026-01-03T23:00:00+02:00"
    rows.append(bad(f, {"meter_id_format", "end_after_start"},
                    "two rules: meter_id too short AND end_time 23:00+02:00 is the same "
                    "instant as start_time 21:00Z (a column-rule failure does not stop "
                    "row rules over the typed values)"))
    return rows


# ---------------------------------------------------------------------------
# Second file: new readings, corrections, a duplicate key, bad rows
# ---------------------------------------------------------------------------


def make_file2(rng, customers, by_meter, planted, spares):
    lines = []  # (text, kind, info)

    # (a) 2026-01-04 00:00..07:00 for three meters of two customers.
    new_meters = [customers[4]["meters"][0], customers[4]["meters"][2], customers[9]["meters"][0]]
    new_rows = []
    for h in range(8):
        for m in new_meters:
            t = DAY4 + h * HOUR
            new_rows.append(new_reading(m, t, measured_wh(rng, m, t), "actual"))
    for i in (7, 19):
        r = new_rows[i]
        m = next(x for x in new_meters if x["id"] == r["meter"])
        r["rtype"] = r["token"] = "estimated"
        r["wh"] = expected_wh(m, r["start"]) // 10 * 10
    new_rows[13]["token"] = ""  # defaults to actual
    new_rows[4]["quote"] = "rtype"
    new_rows[22]["ts_style"] = "space"

    # (c) the same key twice: new_rows[10] comes again, revised, as the last line.
    dup = dict(new_rows[10])
    dup["tags"] = ["duplicate key in file: last line wins"]
    dup["wh"] = new_rows[10]["wh"] + 1234
    dup["ts_style"] = "off+01:00"  # same instant, other spelling

    # (b) ten corrections of first-file rows: same key, new value.
    def first_row(ci, mi, d, h):
        m = customers[ci]["meters"][mi]
        return by_meter[m["id"]][(d - 1) * 24 + h]

    corr = []

    def correct(old, wh, rtype, style, why, token=None):
        r = dict(old)
        r.update({"wh": wh, "rtype": rtype, "token": rtype if token is None else token,
                  "ts_style": style, "end_style": None, "quote": "none",
                  "usage_fmt": "fixed", "pad": False, "tags": [why]})
        assert (wh, rtype) != (old["wh"], old["rtype"])
        corr.append(r)

    w1 = planted["w1"]
    correct(w1, 2489, "actual", "z", "meter glitch 248.900 corrected to 2.489")
    # Estimated readings replaced by the actual values read later.
    taken = {id(planted["of"]), id(planted["x1"]), id(first_row(5, 0, 2, 14)),
             id(first_row(3, 0, 2, 10))}
    est = [r for rs in by_meter.values() for r in rs
           if r["rtype"] == "estimated" and id(r) not in taken]
    est.sort(key=lambda r: (r["start"], r["customer"], r["meter"]))
    for i, r in enumerate(rng.sample(est, 4)):
        correct(r, r["wh"] + rng.randint(-200, 200) + 7, "actual",
                ["z", "space", "z", "off+05:30"][i], "estimated reading replaced by actual")
    of = planted["of"]
    correct(of, of["wh"] + 111, "actual", "z",
            "row written with +02:00 in the first file, corrected with Z")
    x1 = planted["x1"]
    correct(x1, x1["wh"] + 250, "actual", "space",
            "row written as 2026-01-02T01:00:00+02:00 in the first file, corrected without offset")
    r = first_row(5, 0, 2, 14)
    correct(r, r["wh"] // 2 // 10 * 10, "estimated", "z",
            "actual reading found faulty, replaced by an estimate")
    r = next(x for x in by_meter[customers[1]["meters"][0]["id"]] if x["wh"] == 0
             and x["start"].day == 3 and x["rtype"] == "actual")
    correct(r, 412, "actual", "frac", "0.000 corrected to 0.412", token="")
    r = first_row(3, 0, 2, 10)
    correct(r, r["wh"] - 3210, "actual", "off-05:00", "business meter corrected")
    assert len(corr) == 10
    keys = {(r["customer"], r["meter"], r["start"]) for r in corr}
    assert len(keys) == 10

    # (d) bad rows.
    s = iter(spares[-4:])
    m0 = customers[9]
    b1 = {"text": ",".join([m0["id"], next(s), "2026-01-04T03:00:00Z", "2026-01-04T04:00:00Z",
                            q("12,5"), "actual"]),
          "expect": ["type"], "what": "usage_kwh with a decimal comma (quoted field \"12,5\")"}
    b2 = bad([customers[11]["id"], next(s), "2026-01-04T12:00:00+01:00", "2026-01-04T11:00:00Z",
              "0.377", "actual"], {"end_after_start"},
             "end_time 11:00Z is the same instant as start_time 12:00+01:00")

    for r in new_rows[:12]:
        lines.append((render_reading(r), "new", r))
    lines.append((b1["text"], "bad", b1))
    for r in new_rows[12:]:
        lines.append((render_reading(r), "new", r))
    for r in corr[:5]:
        lines.append((render_reading(r), "correction", r))
    lines.append((b2["text"], "bad", b2))
    for r in corr[5:]:
        lines.append((render_reading(r), "correction", r))
    lines.append((render_reading(dup), "duplicate", dup))
    return lines, new_rows, corr, dup


# ---------------------------------------------------------------------------
# Customers reference feed: two full snapshots (no randomness)
# ---------------------------------------------------------------------------

# Region of c[0..11] in make_customers' order. c[11] first appears in the second snapshot.
# In the first snapshot every region holds at least two of c[0..10].
REGIONS = ["north", "west", "south", "east", "north", "south",
           "west", "east", "north", "south", "east", "west"]
MOVER, MOVED_TO = 3, "west"  # c[3] (three business meters) moves east -> west in snapshot 2
NO_READINGS = ("C999001", "west")  # a customer without readings, first snapshot only
BAD_CUSTOMER = {"text": "C12345,north,standard", "expect": ["customer_id_format"],
                "what": "customer_id has 5 digits"}


def tariff_of(kinds):
    """The tariff follows the meters: business/farm -> business, heat pump or EV wallbox ->
    time_of_use, otherwise standard."""
    if "biz" in kinds or "farm" in kinds:
        return "business"
    if "heat" in kinds or "ev" in kinds:
        return "time_of_use"
    return "standard"


def make_customer_snapshots(customers):
    """-> (lines of snapshot 1, lines of snapshot 2), each [(text, kind, info)] sorted by
    customer_id."""
    def row(cid, region, tariff):
        info = {"customer_id": cid, "region": region, "tariff": tariff}
        return (",".join([cid, region, tariff]), "good", info)

    def snapshot(n, regions):
        return [row(c["id"], regions[i], tariff_of([m["kind"] for m in c["meters"]]))
                for i, c in enumerate(customers[:n])]

    first = snapshot(11, REGIONS)
    first.append(row(NO_READINGS[0], NO_READINGS[1], tariff_of([])))
    first.append((BAD_CUSTOMER["text"], "bad", BAD_CUSTOMER))
    moved = list(REGIONS)
    assert moved[MOVER] != MOVED_TO
    moved[MOVER] = MOVED_TO
    second = snapshot(12, moved)
    for lines in (first, second):
        lines.sort(key=lambda x: x[0].split(",")[0])
    assert NO_READINGS[0] not in {c["id"] for c in customers}
    for region in ("north", "south", "east", "west"):
        assert REGIONS[:11].count(region) >= 2, region
    return first, second


# ---------------------------------------------------------------------------
# Independent validator (mirrors config.yaml)
# ---------------------------------------------------------------------------

NULLS = {"", "NA", "Null", "NULL"}
RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})",
                     re.ASCII)
NAIVE = re.compile(r"(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})", re.ASCII)
DECIMAL = re.compile(r"-?(\d+)(?:\.(\d+))?", re.ASCII)

COLUMNS = [
    # name, type, required, default, rules
    ("customer_id", "string", True, None, [("customer_id_format", "pattern", r"C\d{6}")]),
    ("meter_id", "string", True, None, [("meter_id_format", "pattern", r"M\d{8}")]),
    ("start_time", "timestamp", True, None, []),
    ("end_time", "timestamp", True, None, []),
    ("usage_kwh", "decimal", True, None, [("usage_kwh_range", "range", (0, 500))]),
    ("reading_type", "string", False, "actual",
     [("reading_type_allowed", "allowed", ("actual", "estimated"))]),
]


def parse_ts(s):
    m = RFC3339.fullmatch(s)
    if m:
        y, mo, d, h, mi, se = (int(x) for x in m.groups()[:6])
        frac, off = m.group(7), m.group(8)
        micro = int((frac[1:] + "000000")[:6]) if frac else 0
        if off == "Z":
            tz = UTC
        else:
            sign = 1 if off[0] == "+" else -1
            tz = dt.timezone(sign * dt.timedelta(hours=int(off[1:3]), minutes=int(off[4:6])))
        return dt.datetime(y, mo, d, h, mi, se, micro, tzinfo=tz).astimezone(UTC)
    m = NAIVE.fullmatch(s)
    if m:  # no offset: the source timezone, UTC
        return dt.datetime(*(int(x) for x in m.groups()), tzinfo=UTC)
    raise ValueError(s)


def parse_decimal(s):
    m = DECIMAL.fullmatch(s)
    if not m or len(m.group(1)) > 9 or (m.group(2) and len(m.group(2)) > 3):
        raise ValueError(s)  # decimal(12,3): at most 9 integer digits, 3 decimals
    return Decimal(s)


CUSTOMER_COLUMNS = [
    ("customer_id", "string", True, None, [("customer_id_format", "pattern", r"C\d{6}")]),
    ("region", "string", True, None, []),
    ("tariff", "string", True, None, []),
]


def check_columns(columns, fields):
    """Column checks (null tokens, required, type, column rules).
    -> (typed dict, [(rule, column)] errors)"""
    typed, errors = {}, []
    for (name, typ, required, default, rules), raw in zip(columns, fields):
        v = raw.strip()
        if v in NULLS:
            typed[name] = default
            if default is None and required:
                errors.append(("required", name))
                continue
            if default is None:
                continue
            v = default
        try:
            if typ == "timestamp":
                val = parse_ts(v)
            elif typ == "decimal":
                val = parse_decimal(v)
            else:
                val = v
        except ValueError:
            typed[name] = None
            errors.append(("type", name))
            continue
        typed[name] = val
        for rname, kind, arg in rules:
            if kind == "pattern":
                passed = re.fullmatch(arg, val, re.ASCII) is not None
            elif kind == "range":
                passed = arg[0] <= val <= arg[1]
            else:
                passed = val in arg
            if not passed:
                errors.append((rname, name))
    return typed, errors


def validate_row(fields):
    """-> (typed dict, [(rule, column)] errors, [rule] warnings)"""
    typed, errors = check_columns(COLUMNS, fields)
    # Row rules: SQL over the typed values, NULL passes.
    s, e, u = typed["start_time"], typed["end_time"], typed["usage_kwh"]
    if s is not None and e is not None and not e > s:
        errors.append(("end_after_start", None))
    warnings = []
    if u is not None and not u <= 100:
        warnings.append("plausible_hourly_usage")
    return typed, errors, warnings


def validate_customer_row(fields):
    """The customers source: column checks only, no row rules."""
    typed, errors = check_columns(CUSTOMER_COLUMNS, fields)
    return typed, errors, []


def validate_file(path, columns=HEADER, validate=validate_row):
    text = path.read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=",", quotechar='"')
    header = next(reader)
    assert [h.strip() for h in header] == columns, header
    out = []
    for fields in reader:
        assert len(fields) == len(columns), (reader.line_num, fields)
        typed, errors, warnings = validate(fields)
        out.append({"line": reader.line_num, "typed": typed, "errors": errors,
                    "warnings": warnings})
    assert reader.line_num == text.count("\n"), "a record spans several lines"
    return out


def dec3(d):
    return f"{d:.3f}"


def summarize(results, silver):
    """Per-file expectations; upserts the accepted rows into silver (dict, in place)."""
    accepted = [r for r in results if not r["errors"]]
    rejected = [r for r in results if r["errors"]]
    by_rule, warned = {}, {}
    for r in rejected:
        for rule in sorted({e[0] for e in r["errors"]}):
            by_rule[rule] = by_rule.get(rule, 0) + 1
    for r in accepted:
        for w in r["warnings"]:
            warned[w] = warned.get(w, 0) + 1
    seen, dups = {}, set()
    before = set(silver)
    for r in accepted:
        t = r["typed"]
        key = (t["customer_id"], t["meter_id"], t["start_time"])
        if key in seen:
            dups.add(key)
        seen[key] = True
        silver[key] = t  # last line wins
    return {
        "rows": len(results),
        "accepted": len(accepted),
        "rejected": len(rejected),
        "warned": dict(sorted(warned.items())),
        "rejected_by_rule": dict(sorted(by_rule.items())),
        "rejected_lines": {str(r["line"]): sorted({e[0] for e in r["errors"]})
                           for r in rejected},
        "rejected_line_details": {
            str(r["line"]): [{"rule": rule, "column": col} for rule, col in r["errors"]]
            for r in rejected},
        "warned_lines": {str(r["line"]): r["warnings"] for r in accepted if r["warnings"]},
        "warnings_on_rejected_lines": {str(r["line"]): r["warnings"]
                                       for r in rejected if r["warnings"]},
        "new_keys": len([k for k in seen if k not in before]),
        "updated_keys": len([k for k in seen if k in before]),
        "duplicate_keys_in_file": len(dups),
    }


def gold_daily_usage(silver):
    groups = {}
    for (cust, _meter, start), t in silver.items():
        g = groups.setdefault((cust, start.date()), {
            "total": Decimal("0.000"), "count": 0, "est": 0, "first": start,
            "last": t["end_time"]})
        g["total"] += t["usage_kwh"]
        g["count"] += 1
        g["est"] += 1 if t["reading_type"] == "estimated" else 0
        g["first"] = min(g["first"], start)
        g["last"] = max(g["last"], t["end_time"])
    return [{"customer_id": c, "usage_date": d.isoformat(), "total_kwh": dec3(g["total"]),
             "reading_count": g["count"], "estimated_count": g["est"],
             "first_start": ts_z(g["first"]), "last_end": ts_z(g["last"])}
            for (c, d), g in sorted(groups.items())]


def summarize_snapshot(results):
    """Per-file expectations of a snapshot file -> (summary, silver): silver is exactly the
    file's accepted rows (last line wins on a repeated key)."""
    accepted = [r for r in results if not r["errors"]]
    rejected = [r for r in results if r["errors"]]
    silver = {}
    for r in accepted:
        silver[r["typed"]["customer_id"]] = r["typed"]
    return {
        "rows": len(results),
        "accepted": len(accepted),
        "rejected": len(rejected),
        "rejected_lines": {str(r["line"]): sorted({e[0] for e in r["errors"]})
                           for r in rejected},
    }, silver


def customer_list(silver):
    return [{"customer_id": k, "region": silver[k]["region"], "tariff": silver[k]["tariff"]}
            for k in sorted(silver)]


def snapshot_changes(before, after):
    return {
        "updated": sorted(k for k in after if k in before and
                          (after[k]["region"], after[k]["tariff"]) !=
                          (before[k]["region"], before[k]["tariff"])),
        "inserted": sorted(k for k in after if k not in before),
        "deleted": sorted(k for k in before if k not in after),
    }


def gold_regional_daily_usage(readings, customers):
    """readings JOIN customers ON customer_id (inner), grouped by region and UTC date."""
    groups = {}
    for (cust, _meter, start), t in readings.items():
        c = customers.get(cust)
        if c is None:
            continue
        g = groups.setdefault((c["region"], start.date()), {
            "total": Decimal("0.000"), "count": 0, "customers": set()})
        g["total"] += t["usage_kwh"]
        g["count"] += 1
        g["customers"].add(cust)
    return [{"region": r, "usage_date": d.isoformat(), "total_kwh": dec3(g["total"]),
             "reading_count": g["count"], "customers": len(g["customers"])}
            for (r, d), g in sorted(groups.items())]


# ---------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(text)


def spread(rng, good_lines, bad_rows):
    """Insert the bad rows at seeded, well-spread positions; keep their order."""
    n, k = len(good_lines), len(bad_rows)
    step = n // k
    positions = [i * step + rng.randint(step // 4, 3 * step // 4) for i in range(k)]
    out, it = [], iter(zip(positions, bad_rows))
    nxt = next(it, None)
    for i, line in enumerate(good_lines):
        while nxt is not None and nxt[0] == i:
            out.append((nxt[1]["text"], "bad", nxt[1]))
            nxt = next(it, None)
        out.append(line)
    assert nxt is None
    return out


def main():
    rng = random.Random(SEED)
    customers, meters, spares = make_customers(rng)
    good, by_meter, planted = make_file1_good(rng, customers, meters)
    bad1 = make_file1_bad(customers, spares)
    lines1 = spread(rng, [(render_reading(r), "good", r) for r in good], bad1)
    lines2, new_rows, corr, dup = make_file2(rng, customers, by_meter, planted, spares)

    files = {FILE1: lines1, FILE2: lines2}
    for name, lines in files.items():
        write(RAW_DIR / name, ",".join(HEADER) + "\n" + "".join(t + "\n" for t, _, _ in lines))
    # The customers feed takes nothing from rng: the readings above stay as they are.
    cust1, cust2 = make_customer_snapshots(customers)
    cust_files = {CUST_FILE1: cust1, CUST_FILE2: cust2}
    for name, lines in cust_files.items():
        write(RAW_DIR / name,
              ",".join(CUST_HEADER) + "\n" + "".join(t + "\n" for t, _, _ in lines))

    # ---- Read back, validate independently, check against the intentions ----
    silver = {}
    summary = {}
    silver_after_first = None
    gold_after_first = None
    for name, lines in files.items():
        results = validate_file(RAW_DIR / name)
        assert len(results) == len(lines)
        for res, (_text, kind, info) in zip(results, lines):
            got = sorted({e[0] for e in res["errors"]})
            if kind == "bad":
                assert got == info["expect"], (name, res["line"], got, info)
                info["line"] = res["line"]
            else:
                assert got == [], (name, res["line"], res["errors"])
                t = res["typed"]
                assert t["start_time"] == info["start"]
                assert t["end_time"] == info["start"] + HOUR
                assert t["usage_kwh"] == Decimal(info["wh"]) / 1000
                assert t["reading_type"] == info["rtype"]
                info["line"] = res["line"]
        summary[name] = summarize(results, silver)
        if name == FILE1:
            silver_after_first = dict(silver)
            gold_after_first = gold_daily_usage(silver)
    s1, s2 = summary[FILE1], summary[FILE2]
    assert s1["warned"] == {"plausible_hourly_usage": 2}
    assert s1["duplicate_keys_in_file"] == 0 and s1["updated_keys"] == 0
    assert s1["new_keys"] == s1["accepted"] == len(good) == 2160
    assert (s2["new_keys"], s2["updated_keys"], s2["duplicate_keys_in_file"]) == (24, 10, 1)
    # Bad rows never share a natural key with a good row.
    good_keys = set(silver)
    for lines in files.values():
        for _t, kind, info in lines:
            if kind == "bad":
                res = validate_row(next(csv.reader([info["text"]])))[0]
                k = (res["customer_id"], res["meter_id"], res["start_time"])
                assert k not in good_keys, info

    gold = gold_daily_usage(silver)
    total = sum((t["usage_kwh"] for t in silver.values()), Decimal("0.000"))
    total1 = sum((t["usage_kwh"] for t in silver_after_first.values()), Decimal("0.000"))

    # Gold example: a customer-day where corrections turned estimated readings into actual.
    ex = corr[1]
    example = next(g for g in gold if g["customer_id"] == ex["customer"]
                   and g["usage_date"] == ex["start"].date().isoformat())

    def old_of(r):
        return silver_after_first[(r["customer"], r["meter"], r["start"])]

    updated = []
    for r in corr:
        o = old_of(r)
        n = silver[(r["customer"], r["meter"], r["start"])]
        updated.append({"customer_id": r["customer"], "meter_id": r["meter"],
                        "start_time": ts_z(r["start"]), "line": r["line"],
                        "old_usage_kwh": dec3(o["usage_kwh"]), "new_usage_kwh": dec3(n["usage_kwh"]),
                        "old_reading_type": o["reading_type"],
                        "new_reading_type": n["reading_type"]})
    dup_first = new_rows[10]
    dup_final = silver[(dup["customer"], dup["meter"], dup["start"])]

    # ---- Customers: read back, validate, snapshot semantics, the joined model ----
    cust_summary, cust_silver = {}, {}
    for name, lines in cust_files.items():
        results = validate_file(RAW_DIR / name, CUST_HEADER, validate_customer_row)
        assert len(results) == len(lines)
        for res, (_text, kind, info) in zip(results, lines):
            got = sorted({e[0] for e in res["errors"]})
            if kind == "bad":
                assert got == info["expect"], (name, res["line"], got, info)
            else:
                assert got == [] and res["typed"] == info, (name, res["line"], res)
            info["line"] = res["line"]
        cust_summary[name], cust_silver[name] = summarize_snapshot(results)
    c1, c2 = cust_summary[CUST_FILE1], cust_summary[CUST_FILE2]
    assert (c1["rows"], c1["accepted"], c1["rejected"]) == (13, 12, 1)
    assert (c2["rows"], c2["accepted"], c2["rejected"]) == (12, 12, 0)
    cust_first, cust_final = cust_silver[CUST_FILE1], cust_silver[CUST_FILE2]
    changes = snapshot_changes(cust_first, cust_final)
    assert changes == {"updated": [customers[MOVER]["id"]], "inserted": [customers[11]["id"]],
                       "deleted": [NO_READINGS[0]]}, changes
    regional = gold_regional_daily_usage(silver, cust_final)
    # Cross-check with daily_usage: every reading's customer is in the final snapshot, so
    # the join keeps every reading, and each regional row is the sum of its customers' rows.
    assert {k[0] for k in silver} <= set(cust_final)
    by_region = {}
    for g in gold:
        k = (cust_final[g["customer_id"]]["region"], g["usage_date"])
        e = by_region.setdefault(k, [Decimal("0.000"), 0, 0])
        e[0] += Decimal(g["total_kwh"])
        e[1] += g["reading_count"]
        e[2] += 1
    assert [(r["region"], r["usage_date"], r["total_kwh"], r["reading_count"], r["customers"])
            for r in regional] == [(k[0], k[1], dec3(v[0]), v[1], v[2])
                                   for k, v in sorted(by_region.items())]

    expected = {
        "_comment": "Generated by scripts/make_sample.py - do not edit by hand. "
                    "Line numbers are physical lines, the header is line 1. "
                    "Rule lists are sets (sorted by name). 'warned' counts accepted rows "
                    "only; warnings of rejected rows are in 'warnings_on_rejected_lines'. "
                    "Maps list only rules with a non-zero count. Decimals are strings "
                    "with 3 decimals; timestamps are UTC.",
        "files": summary,
        "silver_rows_after_first_file": len(silver_after_first),
        "silver_total_kwh_after_first_file": dec3(total1),
        "gold_daily_usage_rows_after_first_file": len(gold_after_first),
        "silver_rows_after_all": len(silver),
        "silver_total_kwh_after_all": dec3(total),
        "silver_rows_over_100_kwh_after_all": sum(1 for t in silver.values()
                                                   if t["usage_kwh"] > 100),
        "gold_daily_usage_rows_after_all": len(gold),
        "gold_row_example": example,
        "updated_keys": updated,
        "duplicate_key": {"customer_id": dup["customer"], "meter_id": dup["meter"],
                          "start_time": ts_z(dup["start"]),
                          "lines": [dup_first["line"], dup["line"]],
                          "usage_kwh_first": kwh(dup_first["wh"]),
                          "usage_kwh_final": dec3(dup_final["usage_kwh"])},
        "gold_daily_usage_after_all": gold,
        "_comment_customers": "Customers reference feed (source customers, mode snapshot, key "
                              "customer_id): each file is the complete customer list; "
                              "silver.customers after a file is exactly its accepted rows. "
                              "'customers_changes_second' compares silver after the second "
                              "snapshot with silver after the first. "
                              "'gold_regional_daily_usage_after_all' is gold "
                              "regional_daily_usage over the final silver.readings inner-joined "
                              "with the final silver.customers, grouped by region and the UTC "
                              "date of start_time, sorted by region and usage_date.",
        "customers_files": cust_summary,
        "customers_after_first": customer_list(cust_first),
        "customers_after_all": customer_list(cust_final),
        "customers_changes_second": changes,
        "gold_regional_daily_usage_rows_after_all": len(regional),
        "gold_regional_daily_usage_after_all": regional,
    }
    write(FIXTURE, json.dumps(expected, indent=2, ensure_ascii=False) + "\n")
    write(RAW_DIR / "SAMPLE.md", sample_md(files, summary, customers, meters, good, planted,
                                            corr, dup, dup_first, expected, cust_files))
    print(f"wrote {RAW_DIR / FILE1} ({s1['rows']} rows), {RAW_DIR / FILE2} ({s2['rows']} rows),")
    print(f"      {RAW_DIR / CUST_FILE1} ({c1['rows']} rows), "
          f"{RAW_DIR / CUST_FILE2} ({c2['rows']} rows),")
    print(f"      {RAW_DIR / 'SAMPLE.md'}, {FIXTURE}")


# ---------------------------------------------------------------------------
# SAMPLE.md
# ---------------------------------------------------------------------------


def md_code(s):
    return "`` " + s + " ``" if "`" in s else "`" + s + "`"


def sample_md(files, summary, customers, meters, good, planted, corr, dup, dup_first, exp,
              cust_files):
    s1, s2 = summary[FILE1], summary[FILE2]
    styles = {}
    for r in good:
        st = r["ts_style"]
        st = "offset" if st.startswith("off") else st
        styles[st] = styles.get(st, 0) + 1
    n_est = sum(1 for r in good if r["rtype"] == "estimated")
    tokens = {}
    for r in good:
        if r["rtype"] == "actual" and r["token"] != "actual":
            tokens[r["token"]] = tokens.get(r["token"], 0) + 1
    kinds = {"res": "household", "heat": "heat pump", "ev": "household with EV wallbox",
             "biz": "business", "farm": "farm", "vac": "vacation home"}
    out = []
    w = out.append
    w("# Sample data: hourly electricity meter readings")
    w("")
    w("Generated by `scripts/make_sample.py` (Python standard library, fixed seed, "
      "byte-identical on every run). Do not edit by hand: change the script and rerun it. "
      "Exact expected outcomes are in `tests/fixtures/sample_expected.json`, computed by the "
      "script from an independent Python implementation of the rules in `config.yaml`.")
    w("")
    w("Line numbers below are physical line numbers; the header is line 1. "
      "No field contains a line break, so one record is one line.")
    w("")
    w("## Files")
    w("")
    w(f"| file | data rows | accepted | rejected | warned |")
    w("|---|---:|---:|---:|---:|")
    for name in files:
        s = summary[name]
        w(f"| `{name}` | {s['rows']} | {s['accepted']} | {s['rejected']} | "
          f"{sum(s['warned'].values())} |")
    w("")
    w("### `" + FILE1 + "`")
    w("")
    w(f"Hourly readings (end = start + 1 hour) for 2026-01-01 00:00Z to 2026-01-03 23:00Z "
      f"(72 hours) of {len(meters)} meters of {len(customers)} customers: "
      f"{len(good)} good rows, plus {s1['rejected']} bad rows spread through the file. "
      "Rows are ordered by start_time, customer_id, meter_id.")
    w("")
    w("| customer | meters |")
    w("|---|---|")
    for c in customers:
        w(f"| `{c['id']}` | " + ", ".join(f"`{m['id']}` ({kinds[m['kind']]})" for m in c["meters"])
          + " |")
    w("")
    w("Consumption follows a daily curve (low at night, peaks in the morning and evening; "
      "business meters peak during office hours and are lower on the 2026-01-01 holiday and "
      "on Saturday 2026-01-03). Values have at most 3 decimals; most are between 0.1 and 5 kWh, "
      "business and farm meters reach tens of kWh, the vacation home often reads 0.000.")
    w("")
    w("Variety in the good rows:")
    w("")
    w(f"- reading_type: {n_est} `estimated` (communication outages filled with the expected "
      f"value), the rest `actual`; {tokens.get('', 0)} rows leave it empty, "
      f"{tokens.get('NA', 0)} write `NA`, {tokens.get('Null', 0)} write `Null` "
      "(null tokens: the default `actual` applies).")
    w(f"- timestamps: {styles.get('z', 0)} rows RFC 3339 UTC (`2026-01-01T00:00:00Z`), "
      f"{styles.get('space', 0)} without offset (`2026-01-02 05:00:00`, read as UTC), "
      f"{styles.get('offset', 0)} with an offset (`2026-01-02T07:00:00+02:00` = 05:00Z), "
      f"{styles.get('frac', 0)} with fractional seconds (`...T..:..:00.000Z`); one row writes "
      "start_time with `Z` and end_time without offset. Every good row's natural key "
      "(customer_id, meter_id, start_time as an instant) is unique in the file.")
    w("- some fields are quoted (`\"actual\"`, or every field of the row); usage is sometimes "
      "written without trailing zeros (`1.2`, `2`); a few rows have spaces around unquoted "
      "fields (a space after customer_id, two before usage_kwh), removed by trimming.")
    for key in ("w1", "w2", "b100", "sp", "of", "x1", "x2", "mx"):
        r = planted[key]
        w(f"- line {r['line']}: {r['tags'][0]}: {md_code(render_reading(r))}")
    w("")
    w("### `" + FILE2 + "`")
    w("")
    w("Late data and corrections, to be ingested after the first file:")
    w("")
    w("- 24 new hourly readings 2026-01-04 00:00Z..07:00Z for three meters of two customers "
      "(new keys; 2 estimated, 1 with an empty reading_type).")
    w(f"- 10 corrections: same natural key as a row of the first file (start_time sometimes "
      "spelled differently, same instant) with a new value; they replace the old row in silver.")
    w(f"- the key ({dup['customer']}, {dup['meter']}, {ts_z(dup['start'])}) appears twice: "
      f"line {dup_first['line']} ({kwh(dup_first['wh'])}) and line {dup['line']} "
      f"({kwh(dup['wh'])}, spelled with +01:00); the last line wins.")
    w(f"- {s2['rejected']} bad rows.")
    w("")
    w("| line | key | old | new | note |")
    w("|---:|---|---|---|---|")
    for u, r in zip(exp["updated_keys"], corr):
        w(f"| {u['line']} | {u['customer_id']}, {u['meter_id']}, {u['start_time']} | "
          f"{u['old_usage_kwh']} {u['old_reading_type']} | {u['new_usage_kwh']} "
          f"{u['new_reading_type']} | {r['tags'][0]} |")
    w("")
    w("## Bad rows")
    w("")
    w("Every bad row is rejected. The rules column is the exact set of rules the row fails "
      "(a row failing two rules counts once under each).")
    w("")
    w("| file | line | what is wrong | rules failed |")
    w("|---|---:|---|---|")
    for name, lines in files.items():
        for text, kind, info in lines:
            if kind == "bad":
                w(f"| `{name}` | {info['line']} | {info['what']}: {md_code(text)} | "
                  + ", ".join(f"`{x}`" for x in info["expect"]) + " |")
    w("")
    w("Rows rejected per rule:")
    w("")
    w("| rule | " + " | ".join(f"`{n}`" for n in files) + " |")
    w("|---|---:|---:|")
    rules = ["required", "type", "customer_id_format", "meter_id_format", "usage_kwh_range",
             "reading_type_allowed", "end_after_start"]
    for rule in rules:
        w(f"| `{rule}` | {s1['rejected_by_rule'].get(rule, 0)} | "
          f"{s2['rejected_by_rule'].get(rule, 0)} |")
    w("")
    w("Warn rule `plausible_hourly_usage` (usage_kwh <= 100): "
      f"{s1['warned'].get('plausible_hourly_usage', 0)} accepted rows of the first file fail it "
      f"(lines {', '.join(s1['warned_lines'])}); the row with exactly 100.000 passes. The rejected "
      f"row with 612.000 (line {', '.join(s1['warnings_on_rejected_lines'])}) fails it too, but "
      "it is counted as rejected (usage_kwh_range), not as warned.")
    w("")
    w("## Semantics assumed")
    w("")
    w("- Fields are trimmed; `\"\"`, `NA`, `Null`, `NULL` are null (case-sensitive). A null "
      "required column fails `required` only; a null reading_type becomes `actual`.")
    w("- A value that does not parse fails `type` only (and is NULL for the row rules). "
      "Timestamps: RFC 3339 (`Z` or `+hh:mm`, optional fractional seconds) or "
      "`YYYY-MM-DD HH:MM:SS` in the source timezone (UTC). decimal(12,3): optional `-`, "
      "digits, optional `.` and 1 to 3 decimals.")
    w("- Column rules apply to non-null parsed values; `min`/`max` are inclusive; patterns "
      "match the whole value.")
    w("- Row rules are evaluated on every row with its typed values, even when a column rule "
      "already failed; a NULL result passes. All failures of a row are reported.")
    w("- Silver upserts accepted rows on (customer_id, meter_id, start_time as an instant); "
      "within a file the last line wins. Gold `daily_usage` groups silver by customer_id and "
      "the UTC date of start_time.")
    w("")
    w("## Expected totals")
    w("")
    w(f"- silver after the first file: {exp['silver_rows_after_first_file']} rows, "
      f"{exp['silver_total_kwh_after_first_file']} kWh; gold daily_usage "
      f"{exp['gold_daily_usage_rows_after_first_file']} rows.")
    w(f"- silver after both files: {exp['silver_rows_after_all']} rows, "
      f"{exp['silver_total_kwh_after_all']} kWh; gold daily_usage "
      f"{exp['gold_daily_usage_rows_after_all']} rows.")
    g = exp["gold_row_example"]
    w(f"- example gold row: {g['customer_id']} on {g['usage_date']}: total_kwh "
      f"{g['total_kwh']}, reading_count {g['reading_count']}, estimated_count "
      f"{g['estimated_count']}.")
    w("")
    w("## Customers (reference snapshots)")
    w("")
    w("The second source, `customers` (`" + ",".join(CUST_HEADER) + "`, ids only, rows sorted "
      "by customer_id), arrives as full snapshots (mode `snapshot`, key customer_id, every "
      "column required, customer_id checked by `customer_id_format`): each file is the "
      "complete customer list, and after a file silver.customers is exactly its accepted "
      "rows. The tariff follows the meters: `business` with business or farm meters, "
      "`time_of_use` with a heat pump or an EV wallbox, otherwise `standard`.")
    w("")
    w("| file | data rows | accepted | rejected |")
    w("|---|---:|---:|---:|")
    for name in cust_files:
        s = exp["customers_files"][name]
        w(f"| `{name}` | {s['rows']} | {s['accepted']} | {s['rejected']} |")
    w("")
    first = {c["customer_id"]: c for c in exp["customers_after_first"]}
    final = {c["customer_id"]: c for c in exp["customers_after_all"]}
    w("| customer | region in `" + CUST_FILE1 + "` | region in `" + CUST_FILE2 + "` | tariff |")
    w("|---|---|---|---|")
    for cid in sorted(set(first) | set(final)):
        c = final.get(cid) or first[cid]
        w(f"| `{cid}` | {first[cid]['region'] if cid in first else '-'} | "
          f"{final[cid]['region'] if cid in final else '-'} | {c['tariff']} |")
    w("")
    ch = exp["customers_changes_second"]
    bad_cust = next(info for _t, kind, info in cust_files[CUST_FILE1] if kind == "bad")
    (moved,), (new,), (gone,) = ch["updated"], ch["inserted"], ch["deleted"]
    w(f"`{CUST_FILE2}` is the first list except: {moved} moves from {first[moved]['region']} "
      f"to {final[moved]['region']}, {gone} (a customer without readings) is gone, and "
      f"{new} is new ({final[new]['region']}); the bad row is not repeated. Line "
      f"{bad_cust['line']} of `{CUST_FILE1}`, {md_code(bad_cust['text'])}, is rejected by "
      f"`customer_id_format` ({bad_cust['what']}) and never reaches silver.")
    w("")
    w(f"Gold `regional_daily_usage` (silver.readings joined with silver.customers, grouped by "
      f"region and the UTC date of start_time) after all four files: "
      f"{exp['gold_regional_daily_usage_rows_after_all']} rows. Every customer with readings "
      f"is in the final snapshot, so the inner join keeps every reading.")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
