"""The official implementations as the benchmark's references (``--official DIR`` or ``POSEZOO_OFFICIAL``).

DIR holds checkouts named like the official repositories; nothing of them is part of posezoo, they are
imported at run time:

- ``deep-high-resolution-net.pytorch`` (HRNet): lib/core/inference.py ``get_final_preds`` (argmax + quarter
  offset), lib/nms/nms.py ``oks_nms``, lib/dataset/coco.py ``COCODataset.evaluate`` (rescoring, per-image
  OKS-NMS, json_tricks dump and reload, COCOeval);
- ``DarkPose``: lib/core/inference.py ``get_final_preds`` (blur, log, Taylor step);
- ``UDP-Pose`` (its master branch, code under deep-high-resolution-net.pytorch/lib; a checkout with lib/ at
  the top is taken too): lib/core/inference.py ``get_final_preds`` for TARGET_TYPE gaussian and offset;
- ``lpn-pytorch``: lib/core/inference.py ``get_final_preds_using_softargmax`` (beta 160).

Each checkout's lib/ is imported with its top-level packages (core, utils, nms, dataset, ...) as bare
packages in a fresh module table: their ``__init__`` files (which pull in every dataset and model) are not
run, the module table is put back afterwards, and two checkouts with the same package names never see each
other's modules. Two shims, neither changing a result: the Cython box NMS modules that lib/nms/nms.py
imports at the top (unused by ``oks_nms``, and unbuilt in a plain checkout) are empty stand-ins, and the
loaded modules see numpy through a view that restores the aliases numpy 1.24 removed (``np.int``,
``np.float``, ...), which the official code still uses.
"""
from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import torch

from posezoo.codecs.dark import DarkCodec
from posezoo.codecs.gaussian import GaussianHeatmapCodec
from posezoo.codecs.soft_argmax import SoftArgmaxCodec
from posezoo.codecs.udp import UDPHeatmapCodec, UDPOffsetCodec

from .references import LoopReference

ENV = "POSEZOO_OFFICIAL"
LOOP_LABEL = "posezoo loop reference, not the official code"
# checkout name -> where its lib/ may be, in order
REPOS = {
    "hrnet": ("deep-high-resolution-net.pytorch", ("lib",)),
    "dark": ("DarkPose", ("lib",)),
    "udp": ("UDP-Pose", (os.path.join("deep-high-resolution-net.pytorch", "lib"), "lib")),
    "lpn": ("lpn-pytorch", ("lib",)),
}
NMS_STUBS = ("nms.cpu_nms", "nms.gpu_nms")


class OfficialCodeError(RuntimeError):
    """An official checkout is there but does not import or lacks the function the benchmark calls."""


class _Numpy1(types.ModuleType):
    """numpy as the official code (written for numpy 1.x) sees it: the removed builtin aliases are back."""

    def __init__(self) -> None:
        super().__init__("numpy")
        self.int, self.float, self.bool, self.object = int, float, bool, object

    def __getattr__(self, name: str):
        return getattr(np, name)


def _unbuilt(name: str) -> types.ModuleType:
    """A stand-in for an unbuilt Cython module `name` (package.function): calling its function says so."""
    module = types.ModuleType(name)

    def unbuilt(*args, **kwargs):
        raise OfficialCodeError(f"{name} is the official Cython code, not built here (the benchmark does not use it)")
    setattr(module, name.rsplit(".", 1)[1], unbuilt)
    return module


def official_dir(requested: str | None) -> str | None:
    """--official DIR, else $POSEZOO_OFFICIAL, else None (no official comparison); a missing DIR is an error."""
    path = requested or os.environ.get(ENV) or None
    if path is not None and not os.path.isdir(path):
        raise ValueError(f"--official / ${ENV}: {path!r} is not a directory (it should hold checkouts named "
                         f"{', '.join(name for name, _ in REPOS.values())})")
    return path


def checkout_lib(root: str, repo: str) -> str | None:
    """root/<official name>/<its lib folder>, or None when that checkout is absent."""
    name, libs = REPOS[repo]
    for lib in libs:
        path = os.path.join(root, name, lib)
        if os.path.isdir(path):
            return path
    return None


def _packages(lib: str) -> list[str]:
    return sorted(entry for entry in os.listdir(lib) if os.path.isdir(os.path.join(lib, entry))
                  and not entry.startswith((".", "_")))


def load_official(lib: str, module: str) -> types.ModuleType:
    """Import `module` (e.g. "core.inference") from the official `lib` folder in a fresh module table."""
    tops = _packages(lib)

    def ours(name: str) -> bool:
        return name.split(".")[0] in tops

    saved = {name: sys.modules.pop(name) for name in [m for m in sys.modules if ours(m)]}
    for top in tops:
        package = types.ModuleType(top)
        package.__path__ = [os.path.join(lib, top)]
        sys.modules[top] = package
    for stub in [name for name in NMS_STUBS if ours(name)]:
        sys.modules[stub] = _unbuilt(stub)
    sys.path.insert(0, lib)
    try:
        loaded = importlib.import_module(module)
    except Exception as err:  # any failure of third-party code at import: one line naming it
        raise OfficialCodeError(f"cannot import {module} from the official checkout {lib}: "
                                f"{type(err).__name__}: {err}") from err
    finally:
        sys.path.remove(lib)
        official = {name: sys.modules.pop(name) for name in [m for m in sys.modules if ours(m)]}
        sys.modules.update(saved)
    compat = _Numpy1()
    for mod in official.values():
        if getattr(mod, "np", None) is np:
            mod.np = compat
    return loaded


def _function(lib: str, module: str, name: str) -> Callable:
    fn = getattr(load_official(lib, module), name, None)
    if fn is None:
        raise OfficialCodeError(f"{lib}/{module.replace('.', '/')}.py has no {name}")
    return fn


def _decoder(repo: str, lib: str, codec) -> tuple[str, Callable, float] | None:
    """(label, run(outputs, center, scale) -> (preds, maxvals), score tolerance) of the official decode
    for `codec` from the checkout `repo`, or None when that checkout has none for this codec."""
    label = f"{REPOS[repo][0]} core/inference.py"
    if repo == "hrnet" and type(codec) is GaussianHeatmapCodec:
        fn = _function(lib, "core.inference", "get_final_preds")
        cfg = SimpleNamespace(TEST=SimpleNamespace(POST_PROCESS=codec.post_process))
        return f"{label} get_final_preds", lambda out, center, scale: fn(cfg, out, center, scale), 0.0
    if repo == "dark" and isinstance(codec, DarkCodec):
        fn = _function(lib, "core.inference", "get_final_preds")
        cfg = SimpleNamespace(TEST=SimpleNamespace(BLUR_KERNEL=codec.blur_kernel))
        # it blurs the maps in place: the copy stands for validate()'s output.clone().cpu().numpy()
        return f"{label} get_final_preds", lambda out, center, scale: fn(cfg, out.copy(), center, scale), 0.0
    if repo == "lpn" and isinstance(codec, SoftArgmaxCodec):
        fn = _function(lib, "core.inference", "get_final_preds_using_softargmax")

        def run(out, center, scale):
            h, w = out.shape[2:]
            cfg = SimpleNamespace(TEST=SimpleNamespace(POST_PROCESS=codec.post_process),
                                  MODEL=SimpleNamespace(HEATMAP_SIZE=[w, h]))
            preds, maxvals = fn(cfg, torch.from_numpy(out), center, scale)
            return np.asarray(preds), np.asarray(maxvals)
        return f"{label} get_final_preds_using_softargmax", run, 1e-6
    if repo == "udp" and isinstance(codec, (UDPHeatmapCodec, UDPOffsetCodec)):
        fn = _function(lib, "core.inference", "get_final_preds")
        offset = isinstance(codec, UDPOffsetCodec)
        cfg = SimpleNamespace(MODEL=SimpleNamespace(TARGET_TYPE="offset" if offset else "gaussian"),
                              TEST=SimpleNamespace(POST_PROCESS=getattr(codec, "post_process", False)),
                              LOSS=SimpleNamespace(KPD=getattr(codec, "kpd", 0.0)))
        target = "offset" if offset else "gaussian"
        # the Gaussian post-process rewrites the maps in place: a copy, as for DarkPose
        return (f"{label} get_final_preds ({target})",
                lambda out, center, scale: fn(cfg, out if offset else out.copy(), center, scale)[:2],
                1e-5 if offset else 0.0)  # offset scores: OpenCV's float32 blur vs the codec's float64 one
    return None


OFFICIAL_REPO = {GaussianHeatmapCodec: "hrnet", DarkCodec: "dark", SoftArgmaxCodec: "lpn",
                 UDPHeatmapCodec: "udp", UDPOffsetCodec: "udp"}


def decode_official(root: str, codec, loop: LoopReference | None) -> tuple[LoopReference | None, bool, str]:
    """The reference a side-by-side decode uses for `codec`: the official decode from `root` when its
    checkout is there (is_official True), else `loop`, posezoo's loop reference; and a one-line note."""
    repo = OFFICIAL_REPO.get(type(codec))
    if repo is None:
        return loop, False, f"{type(codec).__name__}: no official counterpart known, {LOOP_LABEL}"
    lib = checkout_lib(root, repo)
    found = _decoder(repo, lib, codec) if lib else None
    if found is None:
        return loop, False, (f"{os.path.join(root, REPOS[repo][0])} absent: {type(codec).__name__} against the "
                             f"{LOOP_LABEL}")
    label, run, score_tol = found
    return LoopReference(label, run, score_tol=score_tol), True, f"{type(codec).__name__}: official {label}"


def official_oks_nms(root: str) -> Callable | None:
    """HRNet's lib/nms/nms.py oks_nms(kpts_db, thresh) or None when the checkout is absent."""
    lib = checkout_lib(root, "hrnet")
    return _function(lib, "nms.nms", "oks_nms") if lib else None


def official_coco_evaluator(root: str, cfg, ann_file: str) -> Callable | None:
    """evaluate(preds, boxes, image_ids, output_dir) -> (stats by name, AP) running HRNet's
    lib/dataset/coco.py COCODataset.evaluate on an instance that holds only what evaluate reads (the
    COCO ground truth of `ann_file`, the joint count and TEST thresholds of `cfg`); None without HRNet."""
    lib = checkout_lib(root, "hrnet")
    if lib is None:
        return None
    from pycocotools.coco import COCO  # noqa: PLC0415  (only this path needs it)

    dataset_cls = _function(lib, "dataset.coco", "COCODataset")
    dataset = dataset_cls.__new__(dataset_cls)  # its __init__ reads images and detection files
    dataset.coco = COCO(ann_file)
    dataset.image_set, dataset.num_joints = "bench", cfg.MODEL.NUM_JOINTS
    dataset.in_vis_thre, dataset.oks_thre, dataset.soft_nms = cfg.TEST.IN_VIS_THRE, cfg.TEST.OKS_THRE, \
        cfg.TEST.SOFT_NMS
    dataset.classes = ["__background__", "person"]
    dataset._class_to_coco_ind = {"person": 1}
    official_cfg = SimpleNamespace(RANK=0)

    def evaluate(preds, boxes, image_ids, output_dir):
        img_path = [f"{int(i):012d}.jpg" for i in image_ids]  # evaluate reads the id from the file name
        return dataset.evaluate(official_cfg, preds, output_dir, boxes, img_path)
    return evaluate


def encode_official(root: str, codec, num_joints: int) -> tuple[LoopReference | None, str]:
    """The official training target of `codec`: lib/dataset/JointsDataset.py generate_target(joints,
    joints_vis) of HRNet (gaussian, also LPN's), DarkPose (which takes heatmap coordinates) or UDP-Pose
    (gaussian, offset), on an instance holding only the sizes, sigma and KPD it reads (no joint weights);
    run(joints, joints_vis) -> (target, weight). None and a one-line note when the checkout is absent."""
    if isinstance(codec, SoftArgmaxCodec):  # LPN trains on HRNet's targets
        codec = codec.gaussian
    repo = OFFICIAL_REPO.get(type(codec))
    lib = checkout_lib(root, repo) if repo else None
    if lib is None:
        where = os.path.join(root, REPOS[repo][0]) + " absent" if repo else "no official counterpart known"
        return None, f"{type(codec).__name__} encode: {where}"
    dataset_cls = _function(lib, "dataset.JointsDataset", "JointsDataset")
    dataset = dataset_cls.__new__(dataset_cls)  # its __init__ wants a config and a dataset root
    dataset.num_joints, dataset.sigma = num_joints, codec.sigma if hasattr(codec, "sigma") else 0.0
    dataset.image_size, dataset.heatmap_size = np.array(codec.image_size), np.array(codec.heatmap_size)
    dataset.target_type = "offset" if isinstance(codec, UDPOffsetCodec) else "gaussian"
    dataset.kpd = getattr(codec, "kpd", 0.0)
    dataset.use_different_joints_weight, dataset.joints_weight = False, 1
    label = f"{REPOS[repo][0]} dataset/JointsDataset.py generate_target ({dataset.target_type})"
    if isinstance(codec, DarkCodec):
        return LoopReference(label, lambda joints, vis: dataset.generate_target(codec.to_heatmap(joints), vis)), label
    return LoopReference(label, dataset.generate_target), label


# posezoo MODEL.NAME -> the checkout whose lib/models/<file>.py is the official model
OFFICIAL_MODELS = {"pose_resnet": ("hrnet", "pose_resnet"), "pose_hrnet": ("hrnet", "pose_hrnet"),
                   "lpn": ("lpn", "lpn")}


def official_yaml(root: str, repo: str, cfg_path: str) -> str | None:
    """The checkout's copy of posezoo's experiments/<...>.yaml (same relative path), or None."""
    parts = os.path.normpath(os.path.abspath(cfg_path)).split(os.sep)
    if "experiments" not in parts:
        return None
    rel = parts[len(parts) - 1 - parts[::-1].index("experiments"):]
    path = os.path.join(root, REPOS[repo][0], *rel)
    return path if os.path.isfile(path) else None


def official_config(root: str, repo: str, cfg_path: str):
    """The checkout's lib/config/default.py merged with its copy of `cfg_path` (MODEL.PRETRAINED cleared),
    or a one-line reason why there is none."""
    lib = checkout_lib(root, repo)
    if lib is None:
        return None, f"{os.path.join(root, REPOS[repo][0])} absent"
    yaml_path = official_yaml(root, repo, cfg_path)
    if yaml_path is None:
        return None, f"{cfg_path}: no YAML at the same path under experiments/ in {REPOS[repo][0]}"
    ocfg = _function(lib, "config.default", "_C").clone()
    ocfg.defrost()
    ocfg.merge_from_file(yaml_path)
    ocfg.MODEL.PRETRAINED = ""
    return ocfg, lib


def official_model(root: str, cfg_path: str, model_name: str) -> tuple[torch.nn.Module | None, dict | str]:
    """The official network for posezoo's `model_name`, built (eval mode, untrained) by the checkout's
    lib/models/<name>.py get_pose_net from its config (official_config), and what validate() needs:
    {"flip_back": lib/utils/transforms.py flip_back, "shift": TEST.SHIFT_HEATMAP, "label"}; or (None, a
    one-line reason)."""
    repo, module = OFFICIAL_MODELS.get(model_name, (None, None))
    if repo is None:
        return None, f"MODEL.NAME {model_name}: no official model known"
    ocfg, lib = official_config(root, repo, cfg_path)
    if ocfg is None:
        return None, lib
    net = _function(lib, f"models.{module}", "get_pose_net")(ocfg, is_train=False).eval()
    return net, {"flip_back": _function(lib, "utils.transforms", "flip_back"), "shift": bool(ocfg.TEST.SHIFT_HEATMAP),
                 "label": f"{REPOS[repo][0]} validate() forward"}


class ToTensorNormalize:
    """What the official train.py's torchvision transforms.Compose([ToTensor(), Normalize(mean, std)]) computes
    on an HWC uint8 crop (torchvision is not a posezoo dependency): CHW float32 / 255, minus mean, over std,
    each a full-tensor pass as torchvision does them."""

    def __init__(self, mean, std) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(-1, 1, 1)

    def __call__(self, picture: np.ndarray) -> torch.Tensor:
        chw = torch.from_numpy(picture.transpose((2, 0, 1))).contiguous()
        return chw.to(torch.float32).div(255).clone().sub_(self.mean).div_(self.std)


OFFICIAL_DATASETS = {"coco": ("dataset.coco", "COCODataset"), "mpii": ("dataset.mpii", "MPIIDataset")}


def official_dataset(root: str, cfg, cfg_path: str, image_set: str, is_train: bool):
    """The official lib/dataset/<name>.py dataset (HRNet's, or LPN's copy for lpn models) over posezoo's
    DATASET.ROOT and TEST.USE_GT_BBOX, from the checkout's copy of `cfg_path`, with the official loaders'
    ToTensor + Normalize; (dataset, label) or (None, a one-line reason)."""
    repo = OFFICIAL_MODELS.get(cfg.MODEL.NAME, ("hrnet", None))[0]
    found = OFFICIAL_DATASETS.get(cfg.DATASET.DATASET)
    if found is None:
        return None, f"DATASET.DATASET {cfg.DATASET.DATASET}: no official dataset known"
    ocfg, lib = official_config(root, repo, cfg_path)
    if ocfg is None:
        return None, lib
    ocfg.DATASET.ROOT, ocfg.TEST.USE_GT_BBOX = cfg.DATASET.ROOT, bool(cfg.TEST.USE_GT_BBOX)
    transform = ToTensorNormalize(cfg.DATASET.INPUT_MEAN, cfg.DATASET.INPUT_STD)
    dataset = _function(lib, *found)(ocfg, cfg.DATASET.ROOT, image_set, is_train, transform)
    return dataset, f"{REPOS[repo][0]} {found[0].replace('.', '/')}.py {found[1]}"
