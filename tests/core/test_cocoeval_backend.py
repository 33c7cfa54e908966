"""TEST.COCOEVAL faster_coco_eval gives pycocotools' 10 keypoint AP/AR numbers on the same
generated detections (pycocotools stays the reference), and a wrong backend name is one clear line."""
import contextlib
import copy
import io

import numpy as np
import pytest
from pycocotools.coco import COCO

from bench.evaluate import make_eval_set
from posezoo.core.evaluate import keypoint_coco_eval
from posezoo.nms import COCO_PERSON_SIGMAS


def _eval_set(num_dets: int, seed: int):
    sigmas = np.asarray(COCO_PERSON_SIGMAS)
    gt, dets, kpts = make_eval_set(np.random.default_rng(seed), num_dets, sigmas)
    coco = COCO()
    coco.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    results = [{"image_id": d["image_id"], "category_id": 1, "keypoints": k.reshape(-1).round(4).tolist(),
                "score": d["score"]} for d, k in zip(dets, kpts)]
    return coco, results, sigmas


@pytest.mark.parametrize("seed", [0, 5])
def test_faster_coco_eval_equals_pycocotools(seed):
    pytest.importorskip("faster_coco_eval", reason="faster-coco-eval not installed (pip install faster-coco-eval)")
    coco, results, sigmas = _eval_set(600, seed)
    # sigmas of their own: the backend must pass them on, not fall back to COCO's
    sigmas = sigmas * np.linspace(0.8, 1.3, len(sigmas))
    reference = keypoint_coco_eval(coco, copy.deepcopy(results), sigmas, "pycocotools", quiet=True)
    faster = keypoint_coco_eval(coco, copy.deepcopy(results), sigmas, "faster_coco_eval", quiet=True)
    assert reference.shape == (10,) and 0.1 < reference[0] < 0.99
    np.testing.assert_allclose(faster, reference, rtol=0, atol=1e-12)
    default = keypoint_coco_eval(coco, copy.deepcopy(results), np.asarray(COCO_PERSON_SIGMAS), quiet=True)
    assert not np.allclose(default, reference)


def test_unknown_backend_is_one_clear_line():
    coco, results, sigmas = _eval_set(30, 1)
    with pytest.raises(ValueError, match="TEST.COCOEVAL must be one of pycocotools, faster_coco_eval"):
        keypoint_coco_eval(coco, results, sigmas, "fast")
