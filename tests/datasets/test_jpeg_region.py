"""DATASET.DECODE region (utils/jpeg_region.py): the decoded window holds exactly the pixels of
cv2.imread's whole decode, for every JPEG layout cv2.imencode writes, and a COCO training or test
sample built from it is bit for bit the whole-image sample."""
import glob
import itertools
import logging
import os

import cv2
import numpy as np
import pytest
import torch

from conftest import COCO_SAMPLES, ROOT, TINY_MODEL, link_coco_samples, link_mpii_samples
from posezoo.codecs import build_codec
from posezoo.config import load_config
from posezoo.datasets import build_dataset
from posezoo.utils import jpeg_region

needs_decoder = pytest.mark.skipif(jpeg_region.library() is None,
                                   reason="region decoder unavailable here (needs a C compiler, jpeglib.h and "
                                          "libjpeg, e.g. Debian libjpeg62-turbo-dev)")
W32 = os.path.join(ROOT, "experiments", "coco", "hrnet", "w32_256x192_adam_lr1e-3.yaml")
FLAGS = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
SAMPLING = {"444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444, "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422,
            "420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "411": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411,
            "440": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440}


def texture(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A photo-like test picture: smooth colour ramps plus noise, so every DCT block has detail."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = np.random.default_rng(seed).normal(0, 25, (height, width, 3))
    ramps = np.stack([x * 255 / width, y * 255 / height, 128 + 100 * np.sin(x / 7 + y / 11)], -1)
    return np.clip(ramps + noise, 0, 255).astype(np.uint8)


def encode(picture: np.ndarray, sampling: str = "420", progressive: bool = False, restart: int = 0,
           quality: int = 90) -> bytes:
    ok, data = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, quality, cv2.IMWRITE_JPEG_PROGRESSIVE,
                                              int(progressive), cv2.IMWRITE_JPEG_RST_INTERVAL, restart,
                                              cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SAMPLING[sampling]])
    assert ok
    return data.tobytes()


def rectangles(width: int, height: int, count: int, seed: int = 1) -> list[tuple[int, int, int, int]]:
    rng = np.random.default_rng(seed)
    boxes = [(0, 0, width, height), (0, 0, 1, 1), (width - 1, height - 1, width, height), (1, 1, width - 1, 2)]
    for _ in range(count):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        boxes.append((x0, y0, int(rng.integers(x0 + 1, width + 1)), int(rng.integers(y0 + 1, height + 1))))
    return boxes


def assert_regions_equal(data: bytes, count: int, rgb: bool = False) -> None:
    whole = cv2.imdecode(np.frombuffer(data, np.uint8), FLAGS)
    if rgb:
        whole = cv2.cvtColor(whole, cv2.COLOR_BGR2RGB)
    height, width = whole.shape[:2]
    assert jpeg_region.jpeg_size(data) == (width, height)
    for x0, y0, x1, y1 in rectangles(width, height, count):
        out = np.full((y1 - y0, x1 - x0, 3), 7, np.uint8)
        assert jpeg_region.decode_region(data, x0, y0, x1, y1, rgb, out)
        np.testing.assert_array_equal(out, whole[y0:y1, x0:x1], err_msg=f"region {(x0, y0, x1, y1)}")


@needs_decoder
@pytest.mark.parametrize("size", [(67, 45), (16, 16), (9, 23)])
@pytest.mark.parametrize("sampling,progressive,restart",
                         [(s, p, r) for s, p, r in itertools.product(SAMPLING, (False, True), (0, 2))])
def test_region_pixels_equal_whole_decode(size, sampling, progressive, restart):
    """4:2:0 and 4:2:2 are the layouts where a crop's edge column depends on the upsampler's
    neighbour (jpeg_region.c decodes one iMCU more on each side for them)."""
    assert_regions_equal(encode(texture(*size), sampling, progressive, restart), 12)


@needs_decoder
def test_region_grey_and_rgb_equal_whole_decode():
    picture = texture(41, 30, seed=3)
    ok, grey = cv2.imencode(".jpg", cv2.cvtColor(picture, cv2.COLOR_BGR2GRAY))
    assert_regions_equal(grey.tobytes(), 10)
    assert_regions_equal(encode(picture, "420"), 10, rgb=True)


@needs_decoder
def test_region_pixels_equal_on_the_shared_coco_photos():
    paths = sorted(glob.glob(os.path.join(COCO_SAMPLES, "*.jpg")))
    if not paths:
        pytest.skip(f"{COCO_SAMPLES} is absent")
    for path in paths:
        with open(path, "rb") as f:
            assert_regions_equal(f.read(), 8)


@needs_decoder
def test_window_holds_every_pixel_the_warp_reads():
    """Garbage outside source_window does not change the warped crop (rotated, scaled, partly outside)."""
    picture = texture(120, 90, seed=5)
    rng = np.random.default_rng(0)
    for _ in range(20):
        angle, zoom = rng.uniform(-60, 60), rng.uniform(0.3, 3.0)
        trans = cv2.getRotationMatrix2D((float(rng.uniform(-20, 140)), float(rng.uniform(-20, 110))), angle, zoom)
        trans[:, 2] += rng.uniform(-30, 30, 2)
        x0, y0, x1, y1 = jpeg_region.source_window(trans, (48, 64), 120, 90)
        garbage = np.full_like(picture, 255)
        garbage[y0:y1, x0:x1] = picture[y0:y1, x0:x1]
        np.testing.assert_array_equal(cv2.warpAffine(garbage, trans, (48, 64), flags=cv2.INTER_LINEAR),
                                      cv2.warpAffine(picture, trans, (48, 64), flags=cv2.INTER_LINEAR))


def reencoded_coco(tmp_path, **options) -> str:
    """The shared COCO samples in HRNet's layout with each photo re-encoded by cv2.imencode (in tmp_path)."""
    root = link_coco_samples(tmp_path, ("train2017", "val2017"))
    for path in glob.glob(os.path.join(root, "images", "*", "*.jpg")):
        picture = cv2.imread(path, FLAGS)
        os.remove(path)
        with open(path, "wb") as f:
            f.write(encode(picture, **options))
    return root


def datasets(root: str, split: str, *extra: str):
    out = []
    for mode in ("whole", "region"):
        cfg = load_config(W32, ["DATASET.ROOT", root, "MODEL.PRETRAINED", "''", "TEST.USE_GT_BBOX", "True",
                                "DATASET.DECODE", mode, *extra])
        out.append(build_dataset(cfg, f"{split}2017", split == "train", build_codec(cfg)))
    return out


@needs_decoder
@pytest.mark.parametrize("split", ["train", "val"])
@pytest.mark.parametrize("options", [{"sampling": "420"}, {"sampling": "422", "progressive": True, "restart": 3}])
def test_samples_equal_the_whole_image_path(tmp_path, split, options):
    """Inputs, targets, weights and joints of every box for 4 torch seeds (flips, half bodies,
    rotations) are identical; the ones with DATASET.COLOR_RGB too."""
    root = reencoded_coco(tmp_path, **options)
    for extra in ((), ("DATASET.COLOR_RGB", "False")):
        whole, region = datasets(root, split, *extra)
        assert region.region_decode and not whole.region_decode
        flips = 0
        for seed, i in itertools.product(range(4), range(len(whole))):
            torch.manual_seed(seed)
            a = whole[i]
            torch.manual_seed(seed)
            b = region[i]
            for x, y in zip(a[:3], b[:3]):
                assert torch.equal(x, y)
            np.testing.assert_array_equal(a[3]["joints"], b[3]["joints"])
            assert a[3]["center"].tolist() == b[3]["center"].tolist()
            flips += int(a[3]["center"][0] != whole.db[i]["center"][0])
        assert flips > 0 or split == "val"


@needs_decoder
def test_png_and_truncated_files_go_to_the_whole_image_reader(tmp_path):
    root = link_coco_samples(tmp_path, ("val2017",))
    _, region = datasets(root, "val")
    path = region.db[0]["image"]
    picture = cv2.imread(path, FLAGS)
    os.remove(path)
    png = str(tmp_path / "x.png")
    cv2.imwrite(png, picture)
    assert region.region_source(png) is None
    with open(path, "wb") as f:
        f.write(encode(picture)[:-500])
    assert region.region_source(path) is None
    with pytest.raises(OSError, match="truncated"):
        region[0]


def test_unavailable_decoder_logs_once_and_decodes_whole(tmp_path, monkeypatch, caplog):
    root = link_coco_samples(tmp_path, ("val2017",))

    def no_compiler():
        raise RuntimeError("cc failed: no such compiler")

    jpeg_region.library.cache_clear()
    monkeypatch.setattr(jpeg_region, "_build", no_compiler)
    try:
        with caplog.at_level(logging.WARNING, logger="posezoo.utils.jpeg_region"):
            whole, region = datasets(root, "val")
            datasets(root, "val")
        lines = [r.getMessage() for r in caplog.records if r.name == "posezoo.utils.jpeg_region"]
        assert len(lines) == 1 and "decoding whole images" in lines[0]
        assert not region.region_decode
        assert torch.equal(whole[0][0], region[0][0])
    finally:
        jpeg_region.library.cache_clear()


def test_decode_mode_is_checked(tmp_path):
    root = link_coco_samples(tmp_path, ("val2017",))
    cfg = load_config(W32, ["DATASET.ROOT", root, "MODEL.PRETRAINED", "''", "DATASET.DECODE", "partial"])
    with pytest.raises(ValueError, match="DATASET.DECODE 'partial'"):
        build_dataset(cfg, "val2017", False, build_codec(cfg))


def test_window_of_a_matrix_that_is_not_finite_is_the_whole_image():
    trans = np.array([[np.nan, 0, 0], [0, 1, 0]])
    assert jpeg_region.source_window(trans, (48, 64), 120, 90) == (0, 0, 120, 90)


@needs_decoder
def test_corrupt_entropy_data_falls_back_to_the_whole_image_reader(tmp_path):
    """libjpeg only warns on damaged entropy data; the region decoder then declines and the sample is
    the whole-image reader's (same pixels, same draws)."""
    root = reencoded_coco(tmp_path)
    whole, region = datasets(root, "train")
    path = region.db[0]["image"]
    with open(path, "rb") as f:
        data = bytearray(f.read())
    start = data.index(b"\xff\xda") + 200  # inside the first scan's entropy-coded data
    data[start:start + 40] = b"\xff\xd0" * 20  # stray restart markers: a libjpeg warning, not an error
    with open(path, "wb") as f:
        f.write(bytes(data))
    size = jpeg_region.jpeg_size(bytes(data))
    assert size is not None
    out = np.zeros((size[1], size[0], 3), np.uint8)
    assert not jpeg_region.decode_region(bytes(data), 0, 0, size[0], size[1], False, out)
    for seed in range(3):
        torch.manual_seed(seed)
        a = whole[0]
        torch.manual_seed(seed)
        b = region[0]
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@needs_decoder
@pytest.mark.parametrize("is_train", [True, False])
def test_mpii_samples_equal_the_whole_image_path(tmp_path, is_train):
    """The shared MPII photos (another reader on the same JointsDataset.__getitem__), with the default
    augmentation (flip, scale, rotation)."""
    root = link_mpii_samples(tmp_path / "mpii")
    built = []
    for mode in ("whole", "region"):
        cfg = load_config(None, ["DATASET.DATASET", "mpii", "DATASET.ROOT", str(root), "MODEL.NUM_JOINTS", "16",
                                 "OUTPUT_DIR", str(tmp_path / "out"), *TINY_MODEL, "DATASET.DECODE", mode])
        built.append(build_dataset(cfg, "valid", is_train, build_codec(cfg)))
    whole, region = built
    assert region.region_decode and len(whole) > 0
    for seed, i in itertools.product(range(3), range(len(whole))):
        torch.manual_seed(seed)
        a = whole[i]
        torch.manual_seed(seed)
        b = region[i]
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(a[2], b[2])
