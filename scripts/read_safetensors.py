#!/usr/bin/env python3
"""Validate a safetensors file and list its tensors and metadata keys (Python 3 standard library only).

Written against the safetensors format description
(https://github.com/huggingface/safetensors#format), independently of fewstep's Go reader:

  - 8 bytes: N, an unsigned little-endian 64-bit integer, the size of the header;
  - N bytes: a UTF-8 JSON object beginning with '{' (possibly padded with trailing spaces):
    {"__metadata__": {str: str}, "NAME": {"dtype": "F32", "shape": [..], "data_offsets": [BEGIN, END]}, ...}
    offsets relative to the start of the data section, END one past the last byte;
  - the rest of the file: the data section, entirely covered by the tensors, without holes or overlaps.

The checks: header length within the file, valid UTF-8 JSON object, no duplicate keys, string-only
metadata, known dtypes, non-negative integer dims, END - BEGIN = dtype size x number of elements, the
tensors tiling the data section exactly. When the metadata has fewstep.crc32c (fewstep's files) the
CRC-32C of the data section is checked too (--no-crc skips it).

Usage: read_safetensors.py [--no-crc] [--metadata] [--scalars] FILE
Prints the header and data sizes, one line per tensor ("  NAME DTYPE [d0, d1, ...]", name order),
the metadata keys, and "OK"; on a defect prints "error: ..." to stderr and exits with status 1.
--scalars also prints the value of every 0-d F32 tensor ("  NAME = VALUE": a LoRA file's alphas).
"""

import json
import struct
import sys

DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1,
    "U16": 2, "I16": 2, "F16": 2, "BF16": 2,
    "U32": 4, "I32": 4, "F32": 4,
    "U64": 8, "I64": 8, "F64": 8,
}
MAX_HEADER = 100 * 1024 * 1024  # the reference implementation's limit


class FormatError(Exception):
    pass


def _no_duplicates(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise FormatError("duplicate key %r in the header" % key)
        out[key] = value
    return out


def _crc32c(data):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    crc = 0xFFFFFFFF
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def read(path, check_crc=True):
    """Return (header_len, data_len, tensors {name: (dtype, shape, begin, end)}, metadata)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise FormatError("file is %d bytes, shorter than the 8-byte header length" % len(blob))
    (n,) = struct.unpack("<Q", blob[:8])
    if n > MAX_HEADER:
        raise FormatError("header length %d is above the %d-byte limit" % (n, MAX_HEADER))
    if 8 + n > len(blob):
        raise FormatError("header length %d runs past the end of the %d-byte file" % (n, len(blob)))
    raw = blob[8:8 + n]
    if not raw.startswith(b"{"):
        raise FormatError("header does not begin with '{'")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError("header is not valid UTF-8: %s" % e)
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except ValueError as e:
        raise FormatError("header is not valid JSON: %s" % e)
    if not isinstance(header, dict):
        raise FormatError("header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        raise FormatError("__metadata__ must map strings to strings")
    data = blob[8 + n:]
    tensors = {}
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise FormatError("tensor %r: entry must have exactly dtype, shape and data_offsets" % name)
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if dtype not in DTYPE_SIZES:
            raise FormatError("tensor %r: unknown dtype %r" % (name, dtype))
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise FormatError("tensor %r: shape %r is not a list of non-negative integers" % (name, shape))
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) and o >= 0 for o in offsets):
            raise FormatError("tensor %r: data_offsets %r is not [BEGIN, END]" % (name, offsets))
        begin, end = offsets
        if end < begin:
            raise FormatError("tensor %r: data_offsets %r end before they begin" % (name, offsets))
        count = 1
        for d in shape:
            count *= d
        if end - begin != count * DTYPE_SIZES[dtype]:
            raise FormatError("tensor %r: data_offsets %r span %d bytes, %s %r needs %d"
                              % (name, offsets, end - begin, dtype, shape, count * DTYPE_SIZES[dtype]))
        tensors[name] = (dtype, shape, begin, end)
    pos = 0
    for name, (_, _, begin, end) in sorted(tensors.items(), key=lambda kv: (kv[1][2], kv[1][3], kv[0])):
        if begin != pos:
            raise FormatError("tensor %r: data_offsets [%d, %d] %s byte %d"
                              % (name, begin, end, "overlap the tensors before" if begin < pos else "leave a hole after", pos))
        pos = end
    if pos != len(data):
        raise FormatError("the tensors cover %d bytes of the %d-byte data section" % (pos, len(data)))
    if check_crc and "fewstep.crc32c" in metadata:
        got = "%08x" % _crc32c(data)
        if got != metadata["fewstep.crc32c"].lower():
            raise FormatError("data CRC-32C is %s, metadata fewstep.crc32c says %s" % (got, metadata["fewstep.crc32c"]))
    return n, len(data), tensors, metadata


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    flags = {a for a in argv if a.startswith("--")}
    if len(args) != 1 or flags - {"--no-crc", "--metadata", "--scalars"}:
        print("usage: read_safetensors.py [--no-crc] [--metadata] [--scalars] FILE", file=sys.stderr)
        return 2
    path = args[0]
    try:
        n, data_len, tensors, metadata = read(path, "--no-crc" not in flags)
    except (OSError, FormatError) as e:
        print("error: %s: %s" % (path, e), file=sys.stderr)
        return 1
    print("file: %s" % path)
    print("header: %d bytes; data: %d bytes at offset %d (%s)"
          % (n, data_len, 8 + n, "8-byte aligned" if (8 + n) % 8 == 0 else "not 8-byte aligned"))
    print("tensors: %d" % len(tensors))
    for name in sorted(tensors):
        dtype, shape, _, _ = tensors[name]
        print("  %s %s [%s]" % (name, dtype, ", ".join(str(d) for d in shape)))
    print("metadata keys: %s" % ", ".join(sorted(metadata)))
    if "--metadata" in flags:
        for k in sorted(metadata):
            print("  %s = %s" % (k, metadata[k]))
    if "--scalars" in flags:
        with open(path, "rb") as f:
            blob = f.read()
        for name in sorted(tensors):
            dtype, shape, begin, _ = tensors[name]
            if dtype == "F32" and shape == []:
                (value,) = struct.unpack("<f", blob[8 + n + begin:8 + n + begin + 4])
                print("  %s = %r" % (name, value))
    if "fewstep.export_format" in metadata:
        print("export format: %s" % metadata["fewstep.export_format"])
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
