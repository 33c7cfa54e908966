"""The evaluation fast path equals the plain flow: COCOeval of the in-memory results list vs
pycocotools' loadRes of the written file, and nms_per_image's sorted grouping vs a mask per image."""
import contextlib
import copy
import io
import json
from types import SimpleNamespace

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from bench.evaluate import make_eval_set
from posezoo.core.evaluate import nms_per_image
from posezoo.datasets.coco import COCODataset
from posezoo.nms import COCO_PERSON_SIGMAS, oks_nms


def _coco(gt: dict) -> COCO:
    coco = COCO()
    coco.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def test_results_list_gives_the_file_flow_numbers(tmp_path):
    sigmas = np.asarray(COCO_PERSON_SIGMAS)
    gt, dets, kpts = make_eval_set(np.random.default_rng(3), 300, sigmas)
    results = [{"image_id": d["image_id"], "category_id": 1, "keypoints": k.reshape(-1).round(4).tolist(),
                "score": d["score"]} for d, k in zip(dets, kpts)]
    res_file = tmp_path / "results.json"
    res_file.write_text(json.dumps(results))
    coco = _coco(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        plain = COCOeval(coco, coco.loadRes(str(res_file)), "keypoints")
        plain.params.useSegm = None
        plain.evaluate()
        plain.accumulate()
        plain.summarize()
        stats, ap = COCODataset.coco_eval(SimpleNamespace(coco=coco, sigmas=sigmas), copy.deepcopy(results))
    assert len(stats) == 10 and 0.1 < ap < 1.0
    np.testing.assert_array_equal(np.asarray(list(stats.values())), plain.stats)


def test_nms_per_image_groups_like_a_mask_per_image():
    rng = np.random.default_rng(0)
    n = 400
    image_ids = rng.integers(1, 40, n)  # unsorted, as a detector file may be
    preds = np.concatenate([rng.uniform(0, 100, (n, 17, 2)), rng.random((n, 17, 1))], axis=2)
    scores, areas = rng.random(n), rng.uniform(500, 3000, n)
    got = nms_per_image(preds, scores, areas, image_ids, 0.5, COCO_PERSON_SIGMAS)
    expected = []
    for image_id in np.unique(image_ids):
        idx = np.flatnonzero(image_ids == image_id)
        expected.append((image_id, idx[oks_nms(preds[idx], scores[idx], areas[idx], 0.5, COCO_PERSON_SIGMAS)]))
    assert [i for i, _ in got] == [i for i, _ in expected]
    for (_, a), (_, b) in zip(got, expected):
        np.testing.assert_array_equal(a, b)


def test_instance_scores_follow_the_official_loop_bit_for_bit():
    """HRNet's coco.py evaluate: a running float32 sum of the scores above IN_VIS_THRE, divided by
    their count in float32, times the float64 box score (any other order moves an ulp and, over
    65k detections, AP in the 8th digit)."""
    from posezoo.core.evaluate import instance_scores
    rng = np.random.default_rng(4)
    kpts = rng.random((500, 17, 3)).astype(np.float32)
    kpts[0, :, 2] = 0.1  # none above the threshold: score 0
    box = rng.uniform(0.1, 1.0, 500)
    expected = []
    for person, box_score in zip(kpts, box):
        kpt_score, valid = 0, 0
        for t_s in person[:, 2]:
            if t_s > 0.2:
                kpt_score, valid = kpt_score + t_s, valid + 1
        expected.append((kpt_score / valid if valid else kpt_score) * box_score)
    got = instance_scores(kpts, box, 0.2)
    assert got[0] == 0.0 and got.dtype == np.float64
    np.testing.assert_array_equal(got, np.asarray(expected, dtype=np.float64))
