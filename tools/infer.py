"""Keypoints for your own images or video with a trained model.

    python tools/infer.py --cfg X.yaml --weights m.pth --images photo.jpg
    python tools/infer.py --cfg X.yaml --weights m.pth --images DIR --boxes detections.json
    python tools/infer.py --cfg X.yaml --weights m.pth --images clip.mp4 --output out/clip
    python tools/infer.py --cfg nyu.yaml --weights m.pth --images DEPTH_DIR --centers centers.txt  # 3D hands

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
With --detector-cfg/--detector-weights (a CornerNet YAML and checkpoint) the
person boxes come from that detector instead (scoring >= --det-score-thr, after
its soft-NMS) and are also written as detections_results.json (COCO results,
usable as --boxes or TEST.COCO_BBOX_FILE).

Writes to --output (default OUTPUT_DIR/infer/<input name>):
keypoints_results.json (COCO results: image_id, category_id 1, keypoints as 3K
numbers, score = box score x mean keypoint score above TEST.IN_VIS_THRE,
plus bbox and file_name), and the skeletons drawn on images/<file name>, or on
<video name>.mp4 (.avi for an .avi input). One result per box: no OKS-NMS.
The pictures show the people whose box scores at least --draw-thr (0.3), each
with its box outline and score; the results file keeps every box. Boxes with a
width or height <= 0 or outside their image are dropped and counted.
A model trained on the synthetic demo data does not transfer to photos: use
released weights with their official YAML for real images.

3D body configs on RGB (c2f_vol: MODEL.TARGET_TYPE volumetric) take the same
images and boxes; each result also carries "keypoints_3d": K x (x, y, z), the
image pixels and the depth relative to the root joint in mm (its "keypoints"
are x, y, score as for 2D). --camera CAMERA.json ({"focal": [fx, fy],
"princpt": [cx, cy], "root_depth": mm}) adds "keypoints_cam" (camera mm) and a
3D plot per image (plots/<stem>_3d.png, its first person): an image alone does
not fix how far the person is.

Depth configs (A2J, AWR: MODEL.TARGET_TYPE a2j or awr) estimate 3D hand joints
instead. --images is a depth PNG or a folder of them (sorted by name; --glob
picks the files, e.g. 'depth_1_*.png' in a NYU release folder, which also holds
other cameras, RGB and synthetic frames). Accepted:
NYU's encoding (8-bit, 3 channels, mm = blue + 256 x green, red 0 everywhere) and
single-channel 16-bit PNGs in mm; any other PNG (a photo, 8-bit grayscale, a
colour image with red) is refused, since its pixels are not depths. One hand per
frame, cropped around its centre from --centers: a text file with one "u v d"
line (pixels, mm) per frame in sorted file-name order, A2J's nyu_center_*.mat
(centre_pixel, uvd) or AWR's center_*_refined.txt (a file named so holds x y z
in mm, converted with the NYU camera); the file must have exactly one centre per
frame. Without --centers each centre is estimated from the nearest depth
(posezoo.datasets.nyu.estimate_hand_center); the published NYU numbers use the
released centres, not this estimate. AWR on NYU test frames from 2440 (the
second subject): run those separately with DATASET.CUBE_SIZE [250, 250, 250], as
AWR's test does. Writes results_uvd.txt (A2J/AWR's released format: one line of
K x (u, v, d) per frame), results_files.txt (the frame of each line), the joints
drawn on the colour-mapped depth in images/<file name> and a 3D plot (camera xyz,
mm) in plots/<stem>_3d.png.
"""
import argparse
import fnmatch
import json
import logging
import os
import re
from collections import defaultdict
from collections.abc import Iterator

import _setup  # puts lib/ on the path
import cv2
import numpy as np
import scipy.io
from posezoo.api import PersonDetector, PoseEstimator, whole_image_box
from posezoo.core.evaluate import instance_scores
from posezoo.datasets.joints_dataset import ImageReadError, read_image
from posezoo.datasets.nyu import nyu_uvd_to_xyz, nyu_xyz_to_uvd, read_depth
from posezoo.utils.transforms import usable_boxes
from posezoo.utils.utils import progress_bar, write_atomic, write_text_atomic
from posezoo.utils.vis import draw_boxes, draw_hand_uvd, draw_skeletons, plot_hand_3d

logger = logging.getLogger("posezoo.infer")

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
RESULTS_FILE = "keypoints_results.json"
SKIPPED_FILE = "skipped.json"
DETECTIONS_FILE = "detections_results.json"
DEPTH_RESULTS_FILE, DEPTH_FILES_FILE = "results_uvd.txt", "results_files.txt"
AWR_CENTERS = re.compile(r"center_.*_refined\.txt")
NO_MATCH = ("no box above --score-thr matches any input image by file_name or image_id "
            "(an image's id is its numeric file-name stem, a video frame's its 0-based index)")


def parse_args(argv=None) -> argparse.Namespace:
    parser = _setup.config_parser(__doc__, "TEST.FLIP_TEST True")
    parser.add_argument("--weights", required=True, help="checkpoint (state dict, loaded strictly)")
    parser.add_argument("--images", required=True, help="an image, a folder of images or a video")
    parser.add_argument("--boxes", default="", help="person boxes: COCO detections/results or annotation JSON")
    parser.add_argument("--detector-cfg", default="",
                        help="a CornerNet YAML: detect the person boxes instead of --boxes")
    parser.add_argument("--detector-weights", default="", help="the detector's checkpoint (loaded strictly)")
    parser.add_argument("--det-score-thr", type=float, default=0.3, help="keep detected persons scoring this or more")
    parser.add_argument("--centers", default="",
                        help="depth configs: hand centres, one 'u v d' line per frame (sorted file order), "
                             "A2J's nyu_center_*.mat or AWR's center_*_refined.txt (default: estimated)")
    parser.add_argument("--camera", default="",
                        help='3D body configs: a JSON {"focal": [fx, fy], "princpt": [cx, cy], "root_depth": mm} '
                             "for camera-space joints and 3D plots")
    parser.add_argument("--glob", default="*.png",
                        help="depth configs: the files of an --images folder to use (default *.png)")
    parser.add_argument("--output", default="", help="output folder (default OUTPUT_DIR/infer/<input name>)")
    parser.add_argument("--score-thr", type=float, default=None,
                        help="ignore boxes scoring below this (default TEST.IMAGE_THRE)")
    parser.add_argument("--kpt-thr", type=float, default=0.2, help="draw joints scoring above this")
    parser.add_argument("--draw-thr", type=float, default=0.3,
                        help="draw the people (skeleton, box outline and score) whose box scores at least this "
                             "(default 0.3, so a detection file's low-score boxes do not pile up); the results "
                             "file keeps every box above --score-thr")
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
        if det.get("category_id", 1) != 1 or score < score_thr:
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


def read_depth_png(path: str) -> np.ndarray:
    """(H, W) float32 mm from a NYU depth PNG (8-bit BGR, red 0) or a 16-bit
    single-channel PNG; a PNG of another kind is refused (ValueError)."""
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"--images: cannot read depth frame {path} (not an image or corrupt)")
    if image.ndim == 2 and image.dtype == np.uint16:
        return image.astype(np.float32)
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8 and not image[:, :, 2].any():
        return read_depth(path)
    kind = f"{image.dtype} with {1 if image.ndim == 2 else image.shape[2]} channel(s)"
    if image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.uint8:
        kind += ", red not 0"
    raise ValueError(f"--images: {path} is not a depth frame ({kind}); depth configs take NYU depth PNGs (8-bit BGR, "
                     f"mm = blue + 256 x green, red 0) or single-channel 16-bit PNGs in mm")


def load_centers_file(path: str, count: int) -> np.ndarray:
    """(count, 3) hand centres uvd from --centers: "u v d" lines, A2J's .mat
    (centre_pixel, uvd) or AWR's center_*_refined.txt (x y z mm)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--centers {path}: no such file")
    try:
        if path.lower().endswith(".mat"):
            centers = np.asarray(scipy.io.loadmat(path)["centre_pixel"], dtype=np.float64).reshape(-1, 3)
        else:
            centers = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (KeyError, ValueError, OSError, TypeError) as err:
        raise ValueError(f"--centers {path}: cannot read hand centres ({str(err).splitlines()[0]}); expected "
                         f"'u v d' lines, A2J's nyu_center_*.mat or AWR's center_*_refined.txt") from None
    if centers.ndim != 2 or centers.shape[1] != 3:
        raise ValueError(f"--centers {path}: {centers.shape[1]} values per line, expected 3 (u v d)")
    if AWR_CENTERS.fullmatch(os.path.basename(path)):
        centers = nyu_xyz_to_uvd(centers)
    if len(centers) != count:
        raise ValueError(f"--centers {path} has {len(centers)} centres for {count} depth frames; give one per frame, "
                         f"in sorted file-name order")
    bad = np.flatnonzero(~np.isfinite(centers).all(axis=1) | (centers[:, 2] <= 0))
    if len(bad):
        raise ValueError(f"--centers {path}: centre {bad[0] + 1} {centers[bad[0]].tolist()} needs finite values and a "
                         f"depth > 0")
    return centers


def infer_depth(args, estimator: PoseEstimator, source: str, files: list[str], out_dir: str) -> dict:
    """3D hand joints for depth PNGs: results_uvd.txt, results_files.txt, drawn
    frames and 3D plots under `out_dir` (see the module docstring)."""
    if os.path.isfile(source) and source.lower().endswith(VIDEO_EXTS):
        raise ValueError(f"--images {source}: a depth config takes NYU depth PNGs (a file or a folder), not a video")
    if args.boxes:
        raise ValueError("--boxes is for 2D configs; a depth config crops around hand centres (--centers)")
    if os.path.isdir(source):
        files = [f for f in files if fnmatch.fnmatch(os.path.basename(f), args.glob)]
    files = [f for f in files if f.lower().endswith(".png")]
    if not files:
        raise ValueError(f"--images {source}: no .png depth frame matching --glob {args.glob!r} (a depth config "
                         f"takes NYU depth PNGs)")
    centers = load_centers_file(args.centers, len(files)) if args.centers else [None] * len(files)
    if not args.centers:
        logger.info("=> no --centers: estimating each hand centre from the nearest depth (estimate_hand_center); "
                    "published NYU numbers use the released centres")
    for folder in ("images", "plots"):
        os.makedirs(os.path.join(out_dir, folder), exist_ok=True)
    names, preds, unreadable = [], [], []
    for chunk in progress_bar(list(batched(list(zip(files, centers)), estimator.batch_size)), desc="infer",
                              unit="batch"):
        frames = []
        for path, center in chunk:
            try:
                frames.append((os.path.basename(path), read_depth_png(path), center))
            except (OSError, ValueError):
                if not estimator.cfg.DATASET.SKIP_CORRUPT_IMAGES:
                    raise
                logger.warning("skipping %s: not a readable depth frame", path)
                unreadable.append(path)
        if not frames:
            continue
        uvds = estimator.estimate_depth_batch([depth for _, depth, _ in frames], [c for _, _, c in frames])
        for (name, depth, _), uvd in zip(frames, uvds):
            drawn = draw_hand_uvd(depth, uvd[0], estimator.skeleton)
            if not cv2.imwrite(os.path.join(out_dir, "images", name), drawn):
                raise OSError(f"cannot write {os.path.join(out_dir, 'images', name)}")
            plot_hand_3d(nyu_uvd_to_xyz(uvd[0]), estimator.skeleton,
                         os.path.join(out_dir, "plots", f"{os.path.splitext(name)[0]}_3d.png"), title=name)
            names.append(name)
            preds.append(uvd[0])
    uvd = np.stack(preds) if preds else np.zeros((0, estimator.cfg.MODEL.NUM_JOINTS, 3))
    res_file = os.path.join(out_dir, DEPTH_RESULTS_FILE)
    write_atomic(res_file, lambda tmp: np.savetxt(tmp, uvd.reshape(len(uvd), -1), fmt="%.6f"))
    with open(os.path.join(out_dir, DEPTH_FILES_FILE), "w") as f:
        f.writelines(f"{name}\n" for name in names)
    report_skipped(out_dir, unreadable, 0)
    logger.info("=> %d frames: %s; joints drawn in %s, 3D plots in %s", len(names), res_file,
                os.path.join(out_dir, "images"), os.path.join(out_dir, "plots"))
    return {"file_names": names, "uvd": uvd}


def open_video(source: str, out_dir: str) -> tuple[Iterator, int, "cv2.VideoWriter", str]:
    """The frames of a video as (name, 0-based index, frame), their count, and
    the writer of the drawn copy (.avi for an .avi input, else .mp4) with its path."""
    frames, total, fps, size = read_frames(source)
    items = ((f"frame_{i:06d}", i, frame) for i, frame in enumerate(frames))
    ext = ".avi" if source.lower().endswith(".avi") else ".mp4"
    video_path = os.path.join(out_dir, os.path.splitext(os.path.basename(source))[0] + ext)
    os.makedirs(out_dir, exist_ok=True)
    writer = cv2.VideoWriter(video_path, cv2.VideoWriter_fourcc(*("MJPG" if ext == ".avi" else "mp4v")), fps, size)
    if not writer.isOpened():
        raise OSError(f"cannot write the video {video_path} (no {ext} encoder in this OpenCV build)")
    return items, total, writer, video_path


def read_images(files: list[str], skip_corrupt: bool, unreadable: list[str]) -> Iterator[tuple]:
    """(file name, image id, BGR image) per readable file; an unreadable one is an
    error naming it, or under DATASET.SKIP_CORRUPT_IMAGES a warning and an entry
    in `unreadable` (the end-of-run summary)."""
    for path in files:
        try:
            image = read_image(path, color_rgb=False)
        except ImageReadError:
            if not skip_corrupt:
                raise ImageReadError(f"--images: cannot read image {path} (not an image or corrupt); "
                                     f"set DATASET.SKIP_CORRUPT_IMAGES True to skip it") from None
            logger.warning("skipping unreadable image %s", path)
            unreadable.append(path)
            continue
        name = os.path.basename(path)
        yield name, image_id_of(os.path.splitext(name)[0]), image


def load_camera(path: str) -> dict:
    """--camera: {"focal": [fx, fy], "princpt": [cx, cy], "root_depth": mm}."""
    try:
        with open(path) as f:
            camera = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError(f"--camera {path}: not a readable JSON file ({err})") from None
    if not isinstance(camera, dict) or {"focal", "princpt", "root_depth"} - set(camera):
        raise ValueError(f'--camera {path}: expected {{"focal": [fx, fy], "princpt": [cx, cy], "root_depth": mm}}')
    return camera


def report_skipped(out_dir: str, unreadable: list, dropped_boxes: int) -> None:
    """The end-of-run summary of what --images left out and why (one line, and
    ``skipped.json`` beside the results): images that could not be read, under
    DATASET.SKIP_CORRUPT_IMAGES, and boxes the shared ``usable_boxes`` rule
    dropped (w or h <= 0, or outside their image)."""
    if unreadable or dropped_boxes:
        logger.warning("=> skipped: %d unreadable images (DATASET.SKIP_CORRUPT_IMAGES; %s) and %d boxes with a "
                       "width or height <= 0 or lying outside their image", len(unreadable),
                       ", ".join(os.path.basename(p) for p in unreadable[:10]) or "none", dropped_boxes)
    record = {"unreadable_images": unreadable, "dropped_boxes": int(dropped_boxes)}
    write_text_atomic(os.path.join(out_dir, SKIPPED_FILE), json.dumps(record, indent=1))


def batched(items, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def keep_usable_boxes(images: list[np.ndarray], boxes: list) -> tuple[list, int, int]:
    """Drop degenerate or off-image boxes (the shared rule: they are not people). Returns the boxes,
    how many images had any box and how many boxes were dropped; ``None`` (no boxes given) passes."""
    matched = dropped = 0
    kept = []
    for image, image_boxes in zip(images, boxes):
        if image_boxes is not None:
            matched += int(len(image_boxes) > 0)
            usable = usable_boxes(image_boxes, image.shape[1], image.shape[0])
            dropped += int((~usable).sum())
            image_boxes = image_boxes[usable]
        kept.append(image_boxes)
    return kept, matched, dropped


def pose_records(name: str, image_id, boxes: np.ndarray, keypoints: np.ndarray, pose: dict | None,
                 in_vis_thre: float) -> list[dict]:
    """One COCO-results entry per person (rescored as the test flow does), plus ``keypoints_3d`` and
    ``keypoints_cam`` for 3D body configs."""
    records = []
    scores = instance_scores(keypoints, boxes[:, 4], in_vis_thre)
    for j, (box, kp, score) in enumerate(zip(boxes, keypoints, scores)):
        record = {"image_id": image_id, "category_id": 1, "keypoints": kp.reshape(-1).round(4).tolist(),
                  "score": float(score), "bbox": box[:4].round(3).tolist(), "file_name": name}
        if pose is not None:
            record["keypoints_3d"] = pose["uvz"][j].round(3).tolist()
            if "xyz" in pose:
                record["keypoints_cam"] = pose["xyz"][j].round(3).tolist()
        records.append(record)
    return records


def plot_first_person_3d(xyz: np.ndarray, skeleton, out_dir: str, name: str) -> None:
    """The first person's camera-frame skeleton as a 3D plot (camera y points down; the plot draws y up)."""
    plot_hand_3d(xyz * np.array([1.0, -1.0, 1.0]), skeleton,
                 os.path.join(out_dir, "plots", f"{os.path.splitext(name)[0]}_3d.png"), title=name)


def draw_frame(image: np.ndarray, boxes: np.ndarray, keypoints: np.ndarray, estimator: PoseEstimator,
               args: argparse.Namespace, boxes_given: bool) -> np.ndarray:
    """Skeletons of the people scoring at least ``--draw-thr``, and their boxes unless the box is
    the whole image (no information)."""
    shown = boxes[:, 4] >= args.draw_thr
    drawn = draw_skeletons(image, keypoints[shown], estimator.skeleton, estimator.flip_pairs, args.kpt_thr)
    return draw_boxes(drawn, boxes[shown]) if boxes_given else drawn


def main(argv=None) -> list[dict] | dict:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    source = args.images.rstrip("/") or args.images
    if not os.path.exists(source):
        raise FileNotFoundError(f"--images {source}: no such file or directory")
    is_video = os.path.isfile(source) and source.lower().endswith(VIDEO_EXTS)
    files = [] if is_video else list_images(source)
    if bool(args.detector_cfg) != bool(args.detector_weights) or (args.detector_cfg and args.boxes):
        raise ValueError("--detector-cfg and --detector-weights go together, and replace --boxes")
    detector = (PersonDetector.from_config(args.detector_cfg, args.detector_weights, device=args.device,
                                           score_thr=args.det_score_thr) if args.detector_cfg else None)
    estimator = PoseEstimator.from_config(args.cfg, args.weights, args.opts, args.device, args.batch_size, detector)
    cfg = estimator.cfg
    out_dir = args.output or os.path.join(cfg.OUTPUT_DIR, "infer", os.path.splitext(os.path.basename(source))[0])
    if estimator.input_kind == "depth":
        return infer_depth(args, estimator, source, files, out_dir)
    body3d = estimator.prediction == "keypoints3d"
    camera = load_camera(args.camera) if args.camera else None
    if camera is not None and not body3d:
        raise ValueError("--camera is for 3D body configs (c2f_vol); a 2D config predicts image pixels only")
    if args.centers:
        raise ValueError("--centers is for depth configs (A2J, AWR); a 2D config takes person boxes (--boxes)")
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
        items, total, writer, video_path = open_video(source, out_dir)
        if args.boxes and total > 0 and not any(isinstance(k, int) and 0 <= k < total for k in by_id):
            writer.release()
            raise ValueError(f"--boxes {args.boxes}: {NO_MATCH}")
    else:
        total, writer, unreadable = len(files), None, []
        items = read_images(files, cfg.DATASET.SKIP_CORRUPT_IMAGES, unreadable)
        os.makedirs(os.path.join(out_dir, "images"), exist_ok=True)

    results, detections, matched, frames_written, dropped = [], [], 0, 0, 0
    progress = progress_bar(total=total or None, desc="infer", unit="frame" if is_video else "image")
    try:
        for chunk in batched(items, estimator.batch_size):
            boxes = [detector.detect(image) if detector else boxes_for(name, image_id) for name, image_id, image in chunk]
            images = [image for _, _, image in chunk]
            boxes, chunk_matched, chunk_dropped = keep_usable_boxes(images, boxes)
            matched, dropped = matched + chunk_matched, dropped + chunk_dropped
            if body3d:
                poses = estimator.estimate_3d_batch(images, boxes, [camera] * len(chunk))
                keypoints = [np.concatenate([p["uvz"][..., :2], p["score"][..., None]], 2) for p in poses]
            else:
                poses, keypoints = [None] * len(chunk), estimator.estimate_batch(images, boxes)
            for (name, image_id, image), image_boxes, kpts, pose in zip(chunk, boxes, keypoints, poses):
                if image_boxes is None:
                    image_boxes = whole_image_box(*image.shape[:2])
                if detector:
                    detections += [{"image_id": image_id, "category_id": 1, "bbox": b[:4].round(2).tolist(),
                                    "score": float(b[4]), "file_name": name} for b in image_boxes]
                results += pose_records(name, image_id, image_boxes, kpts, pose, cfg.TEST.IN_VIS_THRE)
                if pose is not None and "xyz" in pose and len(pose["xyz"]):
                    plot_first_person_3d(pose["xyz"][0], estimator.skeleton, out_dir, name)
                drawn = draw_frame(image, image_boxes, kpts, estimator, args, boxes_given=bool(args.boxes or detector))
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
    report_skipped(out_dir, [] if is_video else unreadable, dropped)
    if args.boxes and not matched:
        raise ValueError(f"--boxes {args.boxes}: {NO_MATCH}")
    res_file = os.path.join(out_dir, RESULTS_FILE)
    write_text_atomic(res_file, json.dumps(results))
    if detector:  # reusable as --boxes or TEST.COCO_BBOX_FILE
        det_file = os.path.join(out_dir, DETECTIONS_FILE)
        write_text_atomic(det_file, json.dumps(detections))
        logger.info("=> %d detected person boxes: %s", len(detections), det_file)
    drawn_to = video_path if is_video else os.path.join(out_dir, "images")
    logger.info("=> %d people in %d %s: %s; skeletons drawn in %s", len(results), frames_written or total,
                "frames" if is_video else "images", res_file, drawn_to)
    return results


if __name__ == "__main__":
    _setup.run(main)
