"""Score NYU hand-pose predictions: mean 3D joint error (mm), per-joint error and
the success-frame curve (CSV + PNG).

    python tools/eval_nyu.py --pred result_nyu/nyu_861_epoch32_UVD.txt \\
        --gt data/nyu/nyu_keypointsUVD_test.mat --out output/nyu/a2j_released

Predictions: one frame per line, 14 joints x (u, v, d) in NYU test-label order
(the format A2J and AWR release); ground truth: A2J's ``keypoints3D`` .mat.
"""
import argparse
import logging
import os

import _setup  # puts lib/ on the path
import scipy.io

from posezoo.datasets.nyu import JOINT_NAMES, joint_errors, load_uvd_predictions, save_success_curve

logger = logging.getLogger("posezoo.eval_nyu")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pred", required=True, help="predictions, 42 floats per line")
    parser.add_argument("--gt", required=True, help="ground truth .mat with keypoints3D (N, 14, 3) in uvd")
    parser.add_argument("--out", default="output/nyu/eval", help="folder for success_frames.csv/.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not os.path.isfile(args.gt):
        raise OSError(f"ground truth file not found: {args.gt}")
    errors = joint_errors(load_uvd_predictions(args.pred), scipy.io.loadmat(args.gt)["keypoints3D"])
    csv_path, png_path = save_success_curve(errors, args.out)
    per_joint = dict(zip(JOINT_NAMES, errors.mean(axis=0).tolist()))
    logger.info("mean 3D joint error: %.4f mm over %d frames", errors.mean(), len(errors))
    logger.info("per joint (mm): %s", ", ".join(f"{k} {v:.2f}" for k, v in per_joint.items()))
    logger.info("success-frame curve: %s, %s", csv_path, png_path)
    return {"mean_error_mm": float(errors.mean()), "per_joint_mm": per_joint}


if __name__ == "__main__":
    _setup.run(main)
