"""Make patched copies of medallion's silver/readings with a deletion-vector commit.

Usage: python make_variants.py   (from /tmp/dv-research; needs base/lake built by medallion)

For each variant, copies base/lake to exp/<variant>/lake and appends commit N+1 to
lake/silver/readings/_delta_log that
  * upgrades the protocol to reader 3 / writer 7, readerFeatures [deletionVectors],
    writerFeatures [appendOnly, invariants, deletionVectors] (the legacy features implied by
    the table's old writer version 2; the table uses no other feature),
  * re-states metaData with delta.enableDeletionVectors=true,
  * removes the first data file's add and re-adds the same path with a deletionVector
    (stats unchanged: numRecords = physical rows; tightBounds=false).
Writes exp/<variant>/expected.json (deleted keys, expected count and sum).
"""
import copy, json, os, shutil, sys, time, uuid
import pyarrow.parquet as pq
import pyarrow.compute as pc
from decimal import Decimal

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dvlib import inline_descriptor, write_dv_file, dv_bytes, z85_encode, z85_decode, parse_dv_bytes

ROOT = os.path.dirname(os.path.abspath(__file__))
BASE = os.path.join(ROOT, "base", "lake")
DELETE_ROWS = [0, 5, 7, 500]          # 4 rows -> 40-byte DV (multiple of 4: no Z85 padding)
DELETE_ROWS_PADDED = [0, 5, 7]        # 3 rows -> 38-byte DV, Z85 of zero-padded 40 bytes (as Spark writes)
FIXED_UUID = uuid.UUID("3f2a7c1e-5b4d-4e8f-9a10-2b3c4d5e6f70")


def read_log(tdir):
    log = os.path.join(tdir, "_delta_log")
    versions = sorted(int(f[:20]) for f in os.listdir(log) if f.endswith(".json") and len(f) == 25)
    actions = []
    for v in versions:
        with open(os.path.join(log, f"{v:020d}.json")) as f:
            actions += [(v, json.loads(l)) for l in f if l.strip()]
    return versions[-1], actions


def make(variant):
    vdir = os.path.join(ROOT, "exp", variant)
    shutil.rmtree(vdir, ignore_errors=True)
    shutil.copytree(BASE, os.path.join(vdir, "lake"))
    tdir = os.path.join(vdir, "lake", "silver", "readings")
    last, actions = read_log(tdir)
    protocol = [a["protocol"] for _, a in actions if "protocol" in a][-1]
    metadata = [a["metaData"] for _, a in actions if "metaData" in a][-1]
    assert protocol == {"minReaderVersion": 1, "minWriterVersion": 2}, protocol
    adds = {}
    for _, a in actions:
        if "add" in a:
            adds[a["add"]["path"]] = a["add"]
        if "remove" in a:
            adds.pop(a["remove"]["path"], None)
    first_path = [a["add"]["path"] for _, a in actions if "add" in a][0]
    add = adds[first_path]

    rows = DELETE_ROWS_PADDED if variant == "inline_padded" else DELETE_ROWS
    if variant == "control":   # unpatched copy: the same keys must be FOUND, 1998 rows
        dv = None
        dv_file = None
    elif variant == "inline":
        dv = inline_descriptor(rows)
        dv_file = None
    elif variant == "inline_padded":
        raw = dv_bytes(rows)
        assert len(raw) == 38
        dv = {"storageType": "i", "pathOrInlineDv": z85_encode(raw + b"\0\0"),
              "sizeInBytes": len(raw), "cardinality": len(rows)}
        dv_file = None
    elif variant == "file":
        dv, dv_file = write_dv_file(tdir, rows, u=FIXED_UUID)
    else:
        raise SystemExit(variant)

    # physical rows of the data file at the deleted indexes
    t = pq.read_table(os.path.join(tdir, first_path))
    total_rows = sum(json.loads(a["stats"])["numRecords"] for a in adds.values())
    assert t.num_rows == json.loads(add["stats"])["numRecords"]
    deleted = []
    for i in rows:
        r = t.slice(i, 1).to_pylist()[0]
        deleted.append({"row_index": i, "customer_id": r["customer_id"], "meter_id": r["meter_id"],
                        "start_time": r["start_time"].strftime("%Y-%m-%d %H:%M:%S"),
                        "usage_kwh": str(r["usage_kwh"])})
    total_sum = Decimal(0)
    for p in adds:
        total_sum += Decimal(str(pc.sum(pq.read_table(os.path.join(tdir, p), columns=["usage_kwh"])["usage_kwh"]).as_py()))
    exp_sum = total_sum - sum(Decimal(d["usage_kwh"]) for d in deleted)

    now = int(time.time() * 1000)
    new_protocol = {"minReaderVersion": 3, "minWriterVersion": 7,
                    "readerFeatures": ["deletionVectors"],
                    "writerFeatures": ["appendOnly", "invariants", "deletionVectors"]}
    new_meta = copy.deepcopy(metadata)
    new_meta["configuration"] = dict(new_meta.get("configuration") or {})
    new_meta["configuration"]["delta.enableDeletionVectors"] = "true"
    stats = json.loads(add["stats"])
    stats["tightBounds"] = False
    new_add = dict(add)
    new_add.update({"modificationTime": now, "dataChange": True, "stats": json.dumps(stats, separators=(",", ":")),
                    "deletionVector": dv})
    remove = {"path": first_path, "deletionTimestamp": now, "dataChange": True,
              "extendedFileMetadata": True, "partitionValues": add.get("partitionValues", {}),
              "size": add["size"]}
    commit = [
        {"commitInfo": {"timestamp": now, "operation": "DELETE",
                        "operationParameters": {"predicate": "hand-written DV research commit"},
                        "engineInfo": "dv-research make_variants.py", "isBlindAppend": False}},
        {"protocol": new_protocol},
        {"metaData": new_meta},
        {"remove": remove},
        {"add": new_add},
    ]
    path = os.path.join(tdir, "_delta_log", f"{last + 1:020d}.json")
    if dv is not None:
        with open(path, "x") as f:
            for a in commit:
                f.write(json.dumps(a, separators=(",", ":")) + "\n")

    # self-check of the DV bytes we wrote
    if dv is None:
        back = sorted(rows)
    elif dv["storageType"] == "i":
        back = parse_dv_bytes(z85_decode(dv["pathOrInlineDv"])[: dv["sizeInBytes"]])
    else:
        with open(os.path.join(tdir, dv_file), "rb") as f:
            blob = f.read()
        import struct, zlib
        assert blob[0] == 1
        size = struct.unpack_from(">I", blob, dv["offset"])[0]
        assert size == dv["sizeInBytes"]
        body = blob[dv["offset"] + 4: dv["offset"] + 4 + size]
        assert struct.unpack_from(">I", blob, dv["offset"] + 4 + size)[0] == zlib.crc32(body)
        back = parse_dv_bytes(body)
    assert back == sorted(rows), back

    cfg_src = open(os.path.join(ROOT, "base", "readings.yaml")).read()
    cfg = cfg_src.replace("lakehouse: /tmp/dv-research/base/lake", f"lakehouse: {vdir}/lake")
    assert cfg != cfg_src
    with open(os.path.join(vdir, "readings.yaml"), "w") as f:
        f.write(cfg)
    if dv is None:
        exp_sum, n_deleted = total_sum, 0
    else:
        n_deleted = len(rows)
    expected = {"variant": variant, "table": tdir, "commit_version": last + (dv is not None), "data_file": first_path,
                "deletion_vector": dv, "dv_file": dv_file, "deleted": deleted,
                "total_physical_rows": total_rows, "expected_rows": total_rows - n_deleted,
                "expected_keys_present": len(rows) - n_deleted,
                "physical_sum_usage_kwh": str(total_sum), "expected_sum_usage_kwh": str(exp_sum)}
    with open(os.path.join(vdir, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    print(json.dumps({k: expected[k] for k in ("variant", "commit_version", "deletion_vector", "dv_file",
                                                 "total_physical_rows", "expected_rows", "expected_sum_usage_kwh")}))


if __name__ == "__main__":
    for v in (sys.argv[1:] or ["control", "inline", "file", "inline_padded"]):
        make(v)
