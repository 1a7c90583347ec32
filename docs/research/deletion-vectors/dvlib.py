"""Hand-written Delta deletion-vector encoding (no pyroaring), per Delta PROTOCOL.md
"Deletion Vector Format" and cross-checked against delta-kernel-rs deletion_vector.rs /
deletion_vector_writer.rs (sizeInBytes = magic + bitmap bytes; file = version byte 1, then
BE u32 size, magic LE, portable RoaringTreemap, BE u32 CRC32 over magic+bitmap)."""
import struct, uuid, zlib

Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
Z85_IDX = {c: i for i, c in enumerate(Z85)}
MAGIC = 1681511377  # RoaringBitmapArray portable format, written little-endian


def z85_encode(b: bytes) -> str:
    assert len(b) % 4 == 0, "z85 needs a multiple of 4 bytes (pick the DV so it is)"
    out = []
    for i in range(0, len(b), 4):
        v = struct.unpack(">I", b[i:i + 4])[0]
        chunk = []
        for _ in range(5):
            v, r = divmod(v, 85)
            chunk.append(Z85[r])
        out.extend(reversed(chunk))
    return "".join(out)


def z85_decode(s: str) -> bytes:
    assert len(s) % 5 == 0
    out = bytearray()
    for i in range(0, len(s), 5):
        v = 0
        for c in s[i:i + 5]:
            v = v * 85 + Z85_IDX[c]
        out += struct.pack(">I", v)
    return bytes(out)


def roaring32_portable(values) -> bytes:
    """Standard 32-bit Roaring portable serialization, array containers only
    (cookie 12346 = SERIAL_COOKIE_NO_RUNCONTAINER, so the offset header is present)."""
    values = sorted(set(values))
    buckets = {}
    for v in values:
        buckets.setdefault(v >> 16, []).append(v & 0xFFFF)
    for lows in buckets.values():
        assert len(lows) <= 4096, "only array containers implemented"
    keys = sorted(buckets)
    n = len(keys)
    out = bytearray(struct.pack("<II", 12346, n))
    for k in keys:
        out += struct.pack("<HH", k, len(buckets[k]) - 1)
    off = 8 + 8 * n
    for k in keys:
        out += struct.pack("<I", off)
        off += 2 * len(buckets[k])
    for k in keys:
        out += b"".join(struct.pack("<H", x) for x in buckets[k])
    return bytes(out)


def parse_roaring32(b: bytes, pos=0):
    cookie = struct.unpack_from("<I", b, pos)[0]
    vals = []
    if cookie == 12346:
        n = struct.unpack_from("<I", b, pos + 4)[0]
        p = pos + 8
        hdr = [struct.unpack_from("<HH", b, p + 4 * i) for i in range(n)]
        p += 4 * n + 4 * n  # desc + offsets
        for k, cm1 in hdr:
            card = cm1 + 1
            if card > 4096:
                words = struct.unpack_from("<1024Q", b, p); p += 8192
                for wi, w in enumerate(words):
                    for bit in range(64):
                        if w >> bit & 1:
                            vals.append(k << 16 | wi * 64 + bit)
            else:
                vals += [k << 16 | x for x in struct.unpack_from(f"<{card}H", b, p)]; p += 2 * card
        return vals, p
    if cookie & 0xFFFF == 12347:
        n = (cookie >> 16) + 1
        p = pos + 4
        runbits = b[p:p + (n + 7) // 8]; p += (n + 7) // 8
        hdr = [struct.unpack_from("<HH", b, p + 4 * i) for i in range(n)]; p += 4 * n
        if n >= 4:
            p += 4 * n
        for i, (k, cm1) in enumerate(hdr):
            card = cm1 + 1
            if runbits[i // 8] >> (i % 8) & 1:
                nruns = struct.unpack_from("<H", b, p)[0]; p += 2
                for _ in range(nruns):
                    s, l = struct.unpack_from("<HH", b, p); p += 4
                    vals += [k << 16 | x for x in range(s, s + l + 1)]
            elif card > 4096:
                words = struct.unpack_from("<1024Q", b, p); p += 8192
                for wi, w in enumerate(words):
                    for bit in range(64):
                        if w >> bit & 1:
                            vals.append(k << 16 | wi * 64 + bit)
            else:
                vals += [k << 16 | x for x in struct.unpack_from(f"<{card}H", b, p)]; p += 2 * card
        return vals, p
    raise ValueError(f"bad roaring cookie {cookie}")


def dv_bytes(rows) -> bytes:
    """magic (LE u32) + portable RoaringTreemap: u64 LE bucket count, then per bucket
    u32 LE high key + 32-bit roaring bitmap of the low halves."""
    rows = sorted(set(rows))
    hi = {}
    for r in rows:
        hi.setdefault(r >> 32, []).append(r & 0xFFFFFFFF)
    out = bytearray(struct.pack("<I", MAGIC))
    out += struct.pack("<Q", len(hi))
    for k in sorted(hi):
        out += struct.pack("<I", k) + roaring32_portable(hi[k])
    return bytes(out)


def parse_dv_bytes(b: bytes):
    magic = struct.unpack_from("<I", b, 0)[0]
    assert magic == MAGIC, magic
    nb = struct.unpack_from("<Q", b, 4)[0]
    p = 12
    vals = []
    for _ in range(nb):
        k = struct.unpack_from("<I", b, p)[0]
        v, p = parse_roaring32(b, p + 4)
        vals += [k << 32 | x for x in v]
    return vals


def inline_descriptor(rows) -> dict:
    b = dv_bytes(rows)
    return {"storageType": "i", "pathOrInlineDv": z85_encode(b),
            "sizeInBytes": len(b), "cardinality": len(set(rows))}


def write_dv_file(table_dir: str, rows, prefix: str = "", u: uuid.UUID | None = None):
    """Write deletion_vector_<uuid>.bin under table_dir[/prefix]; return the 'u' descriptor."""
    import os
    u = u or uuid.uuid4()
    b = dv_bytes(rows)
    content = bytes([1]) + struct.pack(">I", len(b)) + b + struct.pack(">I", zlib.crc32(b) & 0xFFFFFFFF)
    d = os.path.join(table_dir, prefix) if prefix else table_dir
    os.makedirs(d, exist_ok=True)
    name = f"deletion_vector_{u}.bin"
    with open(os.path.join(d, name), "wb") as f:
        f.write(content)
    return ({"storageType": "u", "pathOrInlineDv": prefix + z85_encode(u.bytes), "offset": 1,
             "sizeInBytes": len(b), "cardinality": len(set(rows))},
            os.path.join(prefix, name) if prefix else name)
