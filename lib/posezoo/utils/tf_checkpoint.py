"""Read TensorFlow V2 checkpoints (``<prefix>.index`` + ``<prefix>.data-*``) without TensorFlow.

The format (TF >= 0.12, TF1 ``tf.train.Saver`` and TF2 ``tf.train.Checkpoint`` alike):

- ``.index`` is a LevelDB-style table (tensorflow/core/lib/io/table_builder.cc,
  format.cc): data blocks, an (empty) meta-index block, an index block and a
  48-byte footer (two varint block handles, zero padding, fixed64 magic
  ``0xdb4775248b80fb57``). Every block is followed by a 5-byte trailer
  (compression byte, masked CRC32C of block + type byte). A block is a run of
  prefix-compressed entries (varint32 shared, non-shared and value lengths,
  key suffix, value), then uint32 restart offsets and their count.
- Keys are tensor names; the value under the empty key is a ``BundleHeaderProto``
  (num_shards, endianness), every other value a ``BundleEntryProto``
  (tensorflow/core/protobuf/tensor_bundle.proto: dtype, shape, shard_id, offset,
  size, crc32c, slices).
- Tensor bytes lie raw, little-endian, row-major, at ``offset`` in
  ``<prefix>.data-<shard:05d>-of-<num_shards:05d>``.

TF's BundleWriter writes the index with ``kNoCompression`` (tensor_bundle.cc,
``BundleWriter::Finish``), so Snappy blocks (type 1) are refused with a clear
line rather than decoded. Partitioned (sliced) variables, string tensors and
big-endian bundles are refused too; the V1 single-file format is detected and
refused.
"""
from __future__ import annotations

import os
import struct

import numpy as np

MAGIC = 0xDB4775248B80FB57
FOOTER_LEN = 48
# tensorflow/core/framework/types.proto DataType -> numpy (little-endian)
DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 17: "<u2",
          19: "<f2", 22: "<u4", 23: "<u8"}
DTYPE_NAMES = {7: "string", 8: "complex64", 14: "bfloat16", 18: "complex128", 20: "resource", 21: "variant"}


class TFCheckpointError(ValueError):
    """A file that is not a readable TF V2 checkpoint (one line saying why)."""


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), as TF's ``crc32c::Value`` (used on small index blocks)."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    """Inverse of TF's ``crc32c::Mask`` (rotate right 15 after adding 0xa282ead8)."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


def read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """A base-128 varint at ``pos``: (value, next position)."""
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise TFCheckpointError("truncated varint in the checkpoint index")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def parse_proto(buf: bytes) -> dict[int, list]:
    """A minimal protobuf wire-format decoder: field number -> list of raw values
    (varints as int, length-delimited as bytes, fixed32/64 as int)."""
    fields: dict[int, list] = {}
    pos = 0
    while pos < len(buf):
        tag, pos = read_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            value, pos = buf[pos:pos + length], pos + length
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        else:
            raise TFCheckpointError(f"unsupported protobuf wire type {wire} in the checkpoint index")
        fields.setdefault(number, []).append(value)
    return fields


def _read_block(data: bytes, offset: int, size: int, path: str) -> bytes:
    if offset + size + 5 > len(data):
        raise TFCheckpointError(f"{path}: block at {offset} runs past the end of the file (truncated?)")
    block, kind = data[offset:offset + size], data[offset + size]
    if kind == 1:
        raise TFCheckpointError(f"{path}: Snappy-compressed index block; TF writes bundles uncompressed, "
                                f"re-save it with TensorFlow (tf.train.Saver / tf.train.Checkpoint)")
    if kind != 0:
        raise TFCheckpointError(f"{path}: unknown block compression type {kind}")
    (masked,) = struct.unpack_from("<I", data, offset + size + 1)
    if crc32c(block + bytes([kind])) != unmask_crc(masked):
        raise TFCheckpointError(f"{path}: CRC mismatch in the block at {offset} (corrupt file)")
    return block


def _block_entries(block: bytes, path: str):
    """Yield (key, value) of one table block, undoing the prefix compression."""
    if len(block) < 4:
        raise TFCheckpointError(f"{path}: block too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 * (num_restarts + 1)
    if end < 0:
        raise TFCheckpointError(f"{path}: bad restart count {num_restarts}")
    pos, key = 0, b""
    while pos < end:
        shared, pos = read_varint(block, pos)
        non_shared, pos = read_varint(block, pos)
        value_len, pos = read_varint(block, pos)
        if shared > len(key) or pos + non_shared + value_len > end:
            raise TFCheckpointError(f"{path}: corrupt block entry")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_len]
        pos += value_len


def read_table(path: str) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a TF/LevelDB table file, in key order."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < FOOTER_LEN or struct.unpack_from("<Q", data, len(data) - 8)[0] != MAGIC:
        raise TFCheckpointError(f"{path}: not a TF checkpoint index (no table magic in the footer; "
                                f"a V1 checkpoint or a truncated file?)")
    footer = data[len(data) - FOOTER_LEN:]
    _meta_offset, pos = read_varint(footer, 0)
    _meta_size, pos = read_varint(footer, pos)
    index_offset, pos = read_varint(footer, pos)
    index_size, pos = read_varint(footer, pos)
    entries = []
    for _, handle in _block_entries(_read_block(data, index_offset, index_size, path), path):
        offset, p = read_varint(handle, 0)
        size, _ = read_varint(handle, p)
        entries.extend(_block_entries(_read_block(data, offset, size, path), path))
    return entries


class TFCheckpoint:
    """A TF V2 checkpoint opened by its prefix (``model.ckpt`` for ``model.ckpt.index``).

    ``names()`` lists the tensors, ``shape(name)``/``dtype(name)`` describe one,
    ``get(name)`` reads it as a numpy array (checked against its CRC32C when
    ``verify=True``: pure Python, seconds per 10 MB, so off by default).
    """

    def __init__(self, prefix: str):
        prefix = prefix[:-len(".index")] if prefix.endswith(".index") else prefix
        index = prefix + ".index"
        if not os.path.isfile(index):
            hint = " (a TF1 V1 checkpoint: re-save it as V2 with TensorFlow)" if os.path.isfile(prefix) else ""
            raise TFCheckpointError(f"TF checkpoint index not found: {index}{hint}")
        self.prefix = prefix
        self.entries: dict[str, dict] = {}
        num_shards = 1
        for key, value in read_table(index):
            fields = parse_proto(value)
            if key == b"":
                num_shards = fields.get(1, [1])[0]
                if fields.get(2, [0])[0] != 0:
                    raise TFCheckpointError(f"{index}: big-endian bundle, not supported")
                continue
            shape = [parse_proto(d).get(1, [0])[0] for d in parse_proto(fields[2][0]).get(2, [])] if 2 in fields else []
            self.entries[key.decode()] = {
                "dtype": fields.get(1, [0])[0], "shape": shape, "shard": fields.get(3, [0])[0],
                "offset": fields.get(4, [0])[0], "size": fields.get(5, [0])[0],
                "crc32c": fields.get(6, [None])[0], "sliced": 7 in fields}
        self.num_shards = num_shards

    def names(self) -> list[str]:
        return list(self.entries)

    def shape(self, name: str) -> list[int]:
        return list(self._entry(name)["shape"])

    def dtype(self, name: str) -> str:
        code = self._entry(name)["dtype"]
        return np.dtype(DTYPES[code]).name if code in DTYPES else DTYPE_NAMES.get(code, f"dtype {code}")

    def _entry(self, name: str) -> dict:
        if name not in self.entries:
            raise KeyError(f"{name} is not in the checkpoint {self.prefix}")
        return self.entries[name]

    def get(self, name: str, verify: bool = False) -> np.ndarray:
        entry = self._entry(name)
        if entry["sliced"]:
            raise TFCheckpointError(f"{name}: a partitioned (sliced) variable; not supported")
        if entry["dtype"] not in DTYPES:
            raise TFCheckpointError(f"{name}: {self.dtype(name)} tensors are not supported")
        dtype = np.dtype(DTYPES[entry["dtype"]])
        count = int(np.prod(entry["shape"], dtype=np.int64))
        if count * dtype.itemsize != entry["size"]:
            raise TFCheckpointError(f"{name}: {entry['size']} bytes for shape {entry['shape']} of {dtype.name}")
        path = f"{self.prefix}.data-{entry['shard']:05d}-of-{self.num_shards:05d}"
        if not os.path.isfile(path):
            raise TFCheckpointError(f"TF checkpoint data shard not found: {path}")
        with open(path, "rb") as f:
            f.seek(entry["offset"])
            raw = f.read(entry["size"])
        if len(raw) != entry["size"]:
            raise TFCheckpointError(f"{path}: {name} runs past the end of the file (truncated?)")
        if verify and entry["crc32c"] is not None and crc32c(raw) != unmask_crc(entry["crc32c"]):
            raise TFCheckpointError(f"{path}: CRC mismatch for {name} (corrupt file)")
        return np.frombuffer(raw, dtype=dtype).reshape(entry["shape"]).copy()
