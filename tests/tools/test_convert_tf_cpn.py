"""TF checkpoints without TensorFlow (utils/tf_checkpoint.py), tf-cpn's layout
(models/cpn.py ``LAYOUT: tf``) and tools/convert_tf_cpn.py.

- ``tests/specs/tf_checkpoint/``: two tiny checkpoints written by TensorFlow 2.21
  (``tf.compat.v1.train.Saver`` and ``tf.train.Checkpoint``) with the values the
  formulas below give.
- ``tests/specs/cpn_tf_res{50,101}.json``: the variable list (names, HWIO shapes)
  of tf-cpn @48ea10d's graph (``network.py`` + ``lib/nets/basemodel.py``, imports
  shimmed to tf.compat.v1 + tf_slim 1.1, is_train=False).
- Golden outputs: that TF graph, its variables set to ``tests/oracles/cpn_tf_values``,
  on ``RandomState(1).standard_normal((2, H, W, 3))`` (NHWC), with the BN epsilon
  1.001e-5 of TF1's fused batch norm; posezoo's converted model matched it to
  max |diff| 2.2e-6 (CPN-50 at 64x64 -> 16x16, CPN-101 at 72x56 -> 18x14, where
  the merge resizes are not x2). With TF 2.21's unclamped 1e-9 the match was 1.3e-6.
"""
import json
import os
import shutil
import struct
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT, TESTS
from oracles.cpn_tf_values import tf_values
from posezoo.config import load_config
from posezoo.models import CheckpointError, build_model, load_checkpoint
from posezoo.models.cpn import CPN, convert_tf_state, resize_bilinear
from posezoo.utils.tf_checkpoint import TFCheckpoint, TFCheckpointError, crc32c, read_varint, unmask_crc

sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert_tf_cpn  # noqa: E402

TINY = os.path.join(TESTS, "specs", "tf_checkpoint")


def spec(depth):
    with open(os.path.join(TESTS, "specs", f"cpn_tf_res{depth}.json")) as f:
        return json.load(f)


def tiny_expected():
    values = {
        "a/float32": np.arange(6, dtype=np.float32).reshape(2, 3) / 4,
        "a/float64_scalar": np.float64(np.pi),
        "a/int64": np.array([-3, 0, 2 ** 40, 7], dtype=np.int64),
        "a/int32": np.array([[1, -2], [3, -4]], dtype=np.int32),
        "a/bool": np.array([True, False, True]),
        "a/float16": np.array([0.5, -1.25], dtype=np.float16),
        "merge/res4/weights": np.arange(6, dtype=np.float32).reshape(1, 1, 2, 3) - 2.5,
    }
    for i in range(400):
        values["group%02d/unit_%d/variable_%03d" % (i // 10, i % 7, i)] = np.arange(i % 3 + 1, dtype=np.float32) + i
    return values


def test_reads_a_tf1_saver_checkpoint():
    ckpt = TFCheckpoint(os.path.join(TINY, "tf1_saver"))
    expected = tiny_expected()
    assert ckpt.names() == sorted(expected)
    for name, value in expected.items():
        got = ckpt.get(name, verify=True)
        assert got.dtype == value.dtype and got.shape == np.shape(value) and np.array_equal(got, value), name
    assert ckpt.shape("merge/res4/weights") == [1, 1, 2, 3] and ckpt.dtype("a/int64") == "int64"


def test_reads_a_tf2_object_checkpoint_and_refuses_strings():
    ckpt = TFCheckpoint(os.path.join(TINY, "tf2_checkpoint.index"))
    assert ckpt.names() == ["_CHECKPOINTABLE_OBJECT_GRAPH", "kernel/.ATTRIBUTES/VARIABLE_VALUE",
                            "step/.ATTRIBUTES/VARIABLE_VALUE"]
    assert np.array_equal(ckpt.get("kernel/.ATTRIBUTES/VARIABLE_VALUE"), np.arange(24.0).reshape(2, 3, 4))
    assert ckpt.get("step/.ATTRIBUTES/VARIABLE_VALUE") == 350
    with pytest.raises(TFCheckpointError, match="string tensors are not supported"):
        ckpt.get("_CHECKPOINTABLE_OBJECT_GRAPH")


def test_crc32c_known_value():
    assert crc32c(b"123456789") == 0xE3069283  # RFC 3720 B.4 check value
    masked = ((0xE3069283 >> 15) | (0xE3069283 << 17)) & 0xFFFFFFFF
    assert unmask_crc((masked + 0xA282EAD8) & 0xFFFFFFFF) == 0xE3069283


def copy_tiny(tmp_path):
    for f in os.listdir(TINY):
        shutil.copy(os.path.join(TINY, f), tmp_path / f)
    return str(tmp_path / "tf1_saver")


def patch(path, offset, byte):
    data = bytearray(open(path, "rb").read())
    data[offset] = byte
    open(path, "wb").write(bytes(data))


def test_bad_files_give_one_clear_line(tmp_path):
    prefix = copy_tiny(tmp_path)
    index = prefix + ".index"
    data = open(index, "rb").read()
    with pytest.raises(TFCheckpointError, match="not found"):
        TFCheckpoint(str(tmp_path / "nothing"))
    open(tmp_path / "v1.ckpt", "wb").write(b"x")
    with pytest.raises(TFCheckpointError, match="V1 checkpoint"):
        TFCheckpoint(str(tmp_path / "v1.ckpt"))
    open(tmp_path / "cut.index", "wb").write(data[:-3])
    with pytest.raises(TFCheckpointError, match="no table magic"):
        TFCheckpoint(str(tmp_path / "cut"))
    patch(index, 10, data[10] ^ 0xFF)
    with pytest.raises(TFCheckpointError, match="CRC mismatch"):
        TFCheckpoint(prefix)
    open(index, "wb").write(data)
    patch(index, _first_block_end(data), 1)  # the block's compression byte -> Snappy
    with pytest.raises(TFCheckpointError, match="Snappy"):
        TFCheckpoint(prefix)
    open(index, "wb").write(data)
    shard = prefix + ".data-00000-of-00001"
    ckpt = TFCheckpoint(prefix)
    patch(shard, ckpt.entries["a/int64"]["offset"], 0x55)
    with pytest.raises(TFCheckpointError, match="CRC mismatch for a/int64"):
        ckpt.get("a/int64", verify=True)
    os.remove(shard)
    with pytest.raises(TFCheckpointError, match="data shard not found"):
        ckpt.get("a/int64")


def _first_block_end(index_bytes):
    """Where the first data block's trailer starts (its handle is the index block's first value)."""
    footer = index_bytes[-48:]
    pos = read_varint(footer, read_varint(footer, 0)[1])[1]
    index_offset, pos = read_varint(footer, pos)
    index_size, _ = read_varint(footer, pos)
    handle_block = index_bytes[index_offset:index_offset + index_size]
    # one entry: shared 0, key length, value length, key, value (offset, size varints)
    _, p = read_varint(handle_block, 0)
    key_len, p = read_varint(handle_block, p)
    _, p = read_varint(handle_block, p)
    offset, p = read_varint(handle_block, p + key_len)
    size, _ = read_varint(handle_block, p)
    return offset + size


def write_bundle(prefix, tensors, block_entries=3):
    """An independent V2 bundle writer (no prefix sharing, one restart per entry,
    several data blocks) for the multi-block path and the tool's round trip."""
    def varint(n):
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    def field(number, wire, payload):
        return varint(number << 3 | wire) + (varint(payload) if wire == 0 else varint(len(payload)) + payload)

    def block(entries):
        body, restarts = bytearray(), []
        for key, value in entries:
            restarts.append(len(body))
            body += varint(0) + varint(len(key)) + varint(len(value)) + key + value
        body += b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))
        return bytes(body)

    def mask(crc):
        return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

    raw, entries = bytearray(), [(b"", field(1, 0, 1))]
    for name in sorted(tensors):
        value = np.ascontiguousarray(tensors[name], dtype="<f4")
        shape = b"".join(field(2, 2, field(1, 0, d)) for d in value.shape)
        entries.append((name.encode(), field(1, 0, 1) + field(2, 2, shape) + field(4, 0, len(raw))
                        + field(5, 0, value.nbytes)))
        raw += value.tobytes()
    out, index = bytearray(), []
    for i in range(0, len(entries), block_entries):
        chunk = entries[i:i + block_entries]
        b = block(chunk)
        index.append((chunk[-1][0], varint(len(out)) + varint(len(b))))
        out += b + b"\x00" + struct.pack("<I", mask(crc32c(b + b"\x00")))
    meta = block([])
    meta_handle = varint(len(out)) + varint(len(meta))
    out += meta + b"\x00" + struct.pack("<I", mask(crc32c(meta + b"\x00")))
    ib = block(index)
    index_handle = varint(len(out)) + varint(len(ib))
    out += ib + b"\x00" + struct.pack("<I", mask(crc32c(ib + b"\x00")))
    footer = meta_handle + index_handle
    out += footer + b"\x00" * (40 - len(footer)) + struct.pack("<Q", 0xDB4775248B80FB57)
    open(prefix + ".index", "wb").write(bytes(out))
    open(prefix + ".data-00000-of-00001", "wb").write(bytes(raw))


def test_multi_block_bundle_from_an_independent_writer(tmp_path):
    tensors = {f"s{i // 4}/t{i}": np.full((i % 3 + 1, 2), i, np.float32) for i in range(20)}
    write_bundle(str(tmp_path / "m"), tensors)
    ckpt = TFCheckpoint(str(tmp_path / "m"))
    assert ckpt.names() == sorted(tensors)
    assert all(np.array_equal(ckpt.get(n), v) for n, v in tensors.items())


def test_legacy_resize_is_tf1_resize_bilinear():
    """TF1 defaults: source = destination x in/out, upper neighbour clamped, no half-pixel shift."""
    x = torch.tensor([0.0, 10.0, 20.0]).view(1, 1, 1, 3)
    assert resize_bilinear(x, (1, 5), "tf_legacy").flatten().tolist() == pytest.approx([0, 6, 12, 18, 20])
    y = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(1, 1, 4, 1)
    assert resize_bilinear(y, (8, 1), "tf_legacy").flatten().tolist() == pytest.approx(
        [0, 0.5, 1, 1.5, 2, 2.5, 3, 3])
    assert resize_bilinear(y, (7, 1), "align_corners").flatten().tolist() == pytest.approx(
        [0, 0.5, 1, 1.5, 2, 2.5, 3])


@pytest.mark.parametrize("depth", [50, 101])
def test_tf_variables_convert_strictly(depth):
    s = spec(depth)
    names = [n for n, _, _ in s["variables"]]
    shapes = {n: shape for n, shape, _ in s["variables"]}
    slots = [names[0] + "/Adam", "global_step"]
    state, unused = convert_tf_state(lambda n: np.full(shapes[n], names.index(n), np.float32), names + slots, depth)
    assert unused == slots
    model = CPN(depth, 17, (16, 16), layout="tf")
    load_checkpoint(model, state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == s["num_params"]
    values = sorted(float(v.flatten()[0]) for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert values == list(range(len(names)))  # every TF variable used exactly once
    kernel = np.random.RandomState(0).standard_normal(shapes[f"resnet_v1_{depth}/conv1/weights"]).astype(np.float32)
    state, _ = convert_tf_state(lambda n: kernel if n.endswith("v1_%d/conv1/weights" % depth)
                                else np.zeros(shapes[n], np.float32), names, depth)
    assert torch.equal(state["resnet.conv1.weight"], torch.from_numpy(kernel.transpose(3, 2, 0, 1)))
    with pytest.raises(CheckpointError, match="lacks 1 tf-cpn"):
        convert_tf_state(None, names[1:], depth)


# per map (posezoo order: GlobalNet res5, res4, res3, res2, then refine_out): sum, |sum|, map[1, 3, 5, 2:6]
GOLDEN = {
    50: ((64, 64), (16, 16), [
        [-237.9965533821378, 1264.8977648981381, [-0.06889, -0.076115, -0.08334, -0.090565]],
        [29.718757528346032, 1162.3623306625523, [0.068434, 0.041553, 0.014671, 0.019907]],
        [-83.89880205923691, 1275.6906106821261, [-0.084119, -0.05774, -0.031361, -0.037556]],
        [-60.336254158522934, 2277.940038618166, [-0.114893, 0.025284, -0.141696, -0.15579]],
        [-537.2036500731483, 1684.4076910922304, [-0.34294, -0.389769, -0.39316, -0.456771]]]),
    101: ((72, 56), (18, 14), [
        [94.78968035103753, 1455.7294236007147, [0.062274, 0.042968, 0.023661, 0.004355]],
        [-293.7098977987189, 1759.0604381894227, [-0.067393, -0.081316, -0.096815, -0.113888]],
        [-12.09886156115681, 1935.640698426403, [-0.12372, -0.127742, -0.131765, -0.139265]],
        [-22.4332804941223, 1796.7393968371325, [-0.210132, -0.111499, -0.167515, -0.199758]],
        [-1155.6848940104246, 2385.3451723717153, [-0.461977, -0.420699, -0.395162, -0.34409]]]),
}


@pytest.mark.parametrize("depth", [50, 101])
def test_converted_outputs_equal_tf_cpn(depth):
    (h, w), out_hw, golden = GOLDEN[depth]
    values = tf_values(spec(depth)["variables"])
    state, _ = convert_tf_state(values.__getitem__, list(values), depth)
    model = CPN(depth, 17, out_hw, layout="tf").eval()
    load_checkpoint(model, state, strict=True)
    x = torch.from_numpy(np.random.RandomState(1).standard_normal((2, h, w, 3)).astype(np.float32)).permute(0, 3, 1, 2)
    with torch.no_grad():
        maps = model(x)
    assert len(maps) == 5
    for m, (total, abs_total, row) in zip(maps, golden):
        assert m.shape == (2, 17, *out_hw)
        m = m.double()
        assert float(m.sum()) == pytest.approx(total, abs=1e-5 * abs_total)
        assert float(m.abs().sum()) == pytest.approx(abs_total, rel=1e-5)
        assert m[1, 3, 5, 2:6].tolist() == pytest.approx(row, rel=1e-4, abs=2e-6)


def test_tool_round_trip_and_errors(tmp_path, capsys):
    s = spec(50)
    tensors = {n: np.full(shape, i % 7, np.float32) for i, (n, shape, _) in enumerate(s["variables"])}
    tensors["global_step"] = np.zeros((), np.float32)
    write_bundle(str(tmp_path / "cpn"), tensors, block_entries=64)
    out = str(tmp_path / "cpn.pth")
    convert_tf_cpn.main(["--ckpt", str(tmp_path / "cpn"), "--output", out])
    cfg = load_config(None, ["MODEL.NAME", "cpn", "MODEL.EXTRA", '{"LAYOUT": "tf"}', "MODEL.HEATMAP_SIZE", "[8, 8]",
                             "MODEL.IMAGE_SIZE", "[32, 32]", "MODEL.INIT_WEIGHTS", "false"])
    model = load_checkpoint(build_model(cfg), out, strict=True)
    assert float(model.global_net.merge["res3"].bias[0].detach()) == list(tensors).index("merge/res3/biases") % 7
    with pytest.raises(SystemExit) as e:
        convert_tf_cpn.main(["--ckpt", os.path.join(TINY, "tf1_saver"), "--output", str(tmp_path / "x.pth")])
    assert e.value.code == 2 and "not a tf-cpn checkpoint" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x.pth")


def test_layout_and_resize_options():
    base = ["MODEL.NAME", "cpn", "MODEL.HEATMAP_SIZE", "[8, 8]", "MODEL.IMAGE_SIZE", "[32, 32]", "MODEL.INIT_WEIGHTS",
            "false", "MODEL.EXTRA"]
    model = build_model(load_config(None, base + ['{"RESIZE": "tf_legacy"}']))
    assert model.global_net.upsamples[0][0].mode == "tf_legacy" and model.layout == "pytorch"
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 32, 32))[-1].shape == (1, 17, 8, 8)
    for extra, match in (('{"LAYOUT": "caffe"}', "LAYOUT"), ('{"RESIZE": "nearest"}', "RESIZE")):
        with pytest.raises(ValueError, match=match):
            build_model(load_config(None, base + [extra]))
