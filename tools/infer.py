"""Keypoints for your own images or video with a trained model.

    python tools/infer.py --cfg X.yaml --weights m.pth --images photo.jpg
    python tools/infer.py --cfg X.yaml --weights m.pth --images DIR --boxes detections.json
    python tools/infer.py --cfg X.yaml --weights m.pth --images clip.mp4 --output out/clip

Inputs: an image file, a folder of images (.jpg .jpeg .png .bmp .tif .tiff
.webp, not recursive, sorted by name) or a video file (.mp4 .avi .mov .mkv
.webm .m4v).

Boxes (--boxes): a COCO detections/results JSON, i.e. a list of
{"image_id", "bbox": [x, y, w, h], "score", optional "category_id" (only 1 is
used), optional "file_name"}, or a COCO annotation file (a dict with "images"
and "annotations"; its boxes get score 1 unless they carry one). A box goes to
the image whose file name equals its "file_name" (base name), else whose
image_id it carries. An image's id is its file-name stem as an integer when the
stem is all digits (000000100000.jpg -> 100000), else the stem itself; a video
frame's id is its 0-based index. Boxes scoring below --score-thr (default
TEST.IMAGE_THRE) are ignored; an image with no box gets no person. Without
--boxes the whole image is one person box (padded by 25 % like every box).

Writes to --output (default OUTPUT_DIR/infer/<input name>):
keypoints_results.json (COCO results: image_id, category_id 1, keypoints as 3K
numbers, score = box score x mean keypoint score above TEST.IN_VIS_THRE,
plus bbox and file_name), and the skeletons drawn on images/<file name>, or on
<video name>.mp4 (.avi for an .avi input). One result per box: no OKS-NMS.
"""
import argparse
import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterator

import _setup  # puts lib/ on the path
import cv2
import numpy as np
from posezoo.api import PoseEstimator, instance_scores, whole_image_box
from posezoo.datasets.joints_dataset import ImageReadError, read_image
from posezoo.utils.vis import draw_skeletons
from tqdm import tqdm

logger = logging.getLogger("posezoo.infer")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
RESULTS_FILE = "keypoints_results.json"
NO_MATCH = ("no box above --score-thr matches any input image by file_name or image_id "
            "(an image's id is its numeric file-name stem, a video frame's its 0-based index)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = _setup.config_parser(__doc__, "TEST.FLIP_TEST True")
    parser.add_argument("--weights", required=True, help="checkpoint (state dict, loaded strictly)")
    parser.add_argument("--images", required=True, help="an image, a folder of images or a video")
    parser.add_argument("--boxes", default="", help="person boxes: COCO detections/results or annotation JSON")
    parser.add_argument("--output", default="", help="output folder (default OUTPUT_DIR/infer/<input name>)")
    parser.add_argument("--score-thr", type=float, default=None,
                        help="ignore boxes scoring below this (default TEST.IMAGE_THRE)")
    parser.add_argument("--kpt-thr", type=float, default=0.2, help="draw joints scoring above this")
    parser.add_argument("--batch-size", type=int, default=None, help="crops per forward (TEST.BATCH_SIZE_PER_GPU)")
    parser.add_argument("--device", default=None, help="e.g. cpu or cuda:0 (default: from GPUS)")
    return parser.parse_args(argv)


def image_id_of(stem: str):
    return int(stem) if re.fullmatch(r"\d+", stem) else stem


def list_images(path: str) -> list[str]:
    """The image files to process, with one-line errors for a missing path or an empty folder."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"--images {path}: no such file or directory")
    if os.path.isdir(path):
        files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTS))
        if not files:
            raise ValueError(f"--images {path}: the folder has no image ({' '.join(IMAGE_EXTS)})")
        return files
    return [path]


def load_boxes(path: str, score_thr: float) -> tuple[dict, dict]:
    """Boxes by file base name and by image id, each value a list of [x, y, w, h, score]."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--boxes {path}: no such file")
    try:
        with open(path) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"--boxes {path} is not valid JSON: {err}") from None
    if isinstance(data, dict) and "annotations" in data:
        names = {im.get("id"): os.path.basename(im.get("file_name", "")) for im in data.get("images", [])}
        dets = [dict(ann, file_name=names[ann["image_id"]]) if names.get(ann.get("image_id")) else ann
                for ann in data["annotations"] if isinstance(ann, dict)]
    elif isinstance(data, list):
        dets = data
    else:
        raise ValueError(f"--boxes {path}: expected a list of detections or a COCO annotation dict")
    by_name, by_id = defaultdict(list), defaultdict(list)
    for i, det in enumerate(dets):
        if not isinstance(det, dict) or "bbox" not in det or not ("image_id" in det or "file_name" in det):
            raise ValueError(f"--boxes {path}: entry #{i} needs 'bbox' and 'image_id' or 'file_name': {det!r}"[:300])
        box = det["bbox"]
        score = det.get("score", 1.0)
        ok = isinstance(box, list) and len(box) == 4 and all(isinstance(v, (int, float)) for v in box + [score])
        if not ok or not np.isfinite(box + [score]).all():
            raise ValueError(f"--boxes {path}: entry #{i} needs bbox [x, y, w, h] and score as finite numbers")
        if det.get("category_id", 1) != 1 or score < score_thr or box[2] <= 0 or box[3] <= 0:
            continue
        row = [float(v) for v in box] + [float(score)]
        if det.get("file_name"):
            by_name[os.path.basename(det["file_name"])].append(row)
        else:
            by_id[det["image_id"]].append(row)
    return by_name, by_id


def read_frames(path: str) -> tuple[Iterator[np.ndarray], int, float, tuple[int, int]]:
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise OSError(f"--images {path}: cannot open the video (unsupported or corrupt)")
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    size = (int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def frames() -> Iterator[np.ndarray]:
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield frame
        finally:
            capture.release()
    return frames(), count, fps, size


def batched(items, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def main(argv=None) -> list[dict]:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    source = args.images.rstrip("/") or args.images
    if not os.path.exists(source):
        raise FileNotFoundError(f"--images {source}: no such file or directory")
    is_video = os.path.isfile(source) and source.lower().endswith(VIDEO_EXTS)
    files = [] if is_video else list_images(source)
    estimator = PoseEstimator.from_config(args.cfg, args.weights, args.opts, args.device, args.batch_size)
    cfg = estimator.cfg
    out_dir = args.output or os.path.join(cfg.OUTPUT_DIR, "infer", os.path.splitext(os.path.basename(source))[0])
    score_thr = cfg.TEST.IMAGE_THRE if args.score_thr is None else args.score_thr
    by_name, by_id = load_boxes(args.boxes, score_thr) if args.boxes else ({}, {})

    def boxes_for(name: str, image_id) -> np.ndarray | None:
        if not args.boxes:
            return None
        rows = by_name.get(name) or by_id.get(image_id) or by_id.get(str(image_id), [])
        return np.asarray(rows, dtype=np.float64).reshape(-1, 5)

    names = [os.path.basename(path) for path in files]
    if args.boxes and files and not any(len(boxes_for(n, image_id_of(os.path.splitext(n)[0]))) for n in names):
        raise ValueError(f"--boxes {args.boxes}: {NO_MATCH}")

    if is_video:
        frames, total, fps, size = read_frames(source)
        if args.boxes and total > 0 and not any(isinstance(k, int) and 0 <= k < total for k in by_id):
            raise ValueError(f"--boxes {args.boxes}: {NO_MATCH}")
        items = ((f"frame_{i:06d}", i, frame) for i, frame in enumerate(frames))
        ext = ".avi" if source.lower().endswith(".avi") else ".mp4"
        video_path = os.path.join(out_dir, os.path.splitext(os.path.basename(source))[0] + ext)
        os.makedirs(out_dir, exist_ok=True)
        writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*("MJPG" if ext == ".avi" else "mp4v")),
                                 fps, size)
        if not writer.isOpened():
            raise OSError(f"cannot write the video {video_path} (no {ext} encoder in this OpenCV build)")
    else:
        total, writer = len(files), None

        def read_all():
            for path in files:
                try:
                    image = read_image(path, color_rgb=False)
                except ImageReadError:
                    if not cfg.DATASET.SKIP_CORRUPT_IMAGES:
                        raise ImageReadError(f"--images: cannot read image {path} (not an image or corrupt); "
                                             f"set DATASET.SKIP_CORRUPT_IMAGES True to skip it") from None
                    logger.warning("skipping unreadable image %s", path)
                    continue
                name = os.path.basename(path)
                yield name, image_id_of(os.path.splitext(name)[0]), image
        items = read_all()
        os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)

    results, matched, frames_written = [], 0, 0
    progress = tqdm(total=total or None, desc="infer", unit="frame" if is_video else "image", dynamic_ncols=True)
    try:
        for chunk in batched(items, estimator.batch_size):
            boxes = [boxes_for(name, image_id) for name, image_id, _ in chunk]
            keypoints = estimator.estimate_batch([image for _, _, image in chunk], boxes)
            for (name, image_id, image), image_boxes, kpts in zip(chunk, boxes, keypoints):
                if image_boxes is None:
                    image_boxes = whole_image_box(*image.shape[:2])
                matched += int(len(image_boxes) > 0)
                scores = instance_scores(kpts, image_boxes[:, 4], cfg.TEST.IN_VIS_THRE)
                for box, kp, score in zip(image_boxes, kpts, scores):
                    results.append({"image_id": image_id, "category_id": 1,
                                    "keypoints": kp.reshape(-1).round(4).tolist(), "score": float(score),
                                    "bbox": box[:4].round(3).tolist(), "file_name": name})
                drawn = draw_skeletons(image, kpts, estimator.skeleton, estimator.flip_pairs, args.kpt_thr)
                if writer is not None:
                    writer.write(drawn)
                    frames_written += 1
                elif not cv2.imwrite(os.path.join(out_dir, "images", name), drawn):
                    raise OSError(f"cannot write {os.path.join(out_dir, 'images', name)}")
            progress.update(len(chunk))
    finally:
        progress.close()
        if writer is not None:
            writer.release()
    if args.boxes and not matched:
        raise ValueError(f"--boxes {args.boxes}: {NO_MATCH}")
    res_file = os.path.join(out_dir, RESULTS_FILE)
    with open(res_file + ".tmp", "w") as f:
        json.dump(results, f)
    os.replace(res_file + ".tmp", res_file)
    drawn_to = video_path if is_video else os.path.join(out_dir, "images")
    logger.info("=> %d people in %d %s: %s; skeletons drawn in %s", len(results), frames_written or total,
                "frames" if is_video else "images", res_file, drawn_to)
    return results


if __name__ == "__main__":
    _setup.run(main)
