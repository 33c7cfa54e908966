"""Default configuration: HRNet's key names and defaults, plus the keys that the
official SimpleBaseline, DarkPose, LPN and UDP-Pose YAMLs add.

Every key a YAML may set is listed here; a key that is not is a config error.
`MODEL.EXTRA` is the one free-form node: each model validates its own fields.

Keys the official code reads nowhere, and what posezoo does with them:

- ``LOSS.USE_OHKM`` / ``LOSS.TOPK``: HRNet's train.py always builds the plain
  JointsMSELoss; here ``USE_OHKM: true`` selects ``JointsOHKMMSELoss`` with TOPK.
  Every official YAML sets it false, so official results are unchanged.
- ``TRAIN.WD`` under ``OPTIMIZER: adam``: the official code builds Adam without
  weight decay although every YAML sets WD 1e-4. The published numbers were
  trained that way, so WD stays ignored under Adam unless
  ``TRAIN.ADAM_WEIGHT_DECAY: true`` (a posezoo key) asks for it.
- ``TEST.BBOX_THRE``: here the IoU threshold of a box NMS over detected boxes
  before pose estimation; the official value 1.0 disables it.
- ``TEST.NMS_THRE``, ``TRAIN.GAMMA1``, ``TRAIN.GAMMA2``, ``MODEL.TAG_PER_JOINT``,
  ``DATASET.DATA_FORMAT`` (images are decoded by content), ``RANK``: accepted
  for compatibility and unused, as in the official code. NMS_THRE in particular is
  not applied because HRNet's default 0.6 would change every detected-box result.
"""
from easydict import EasyDict

_C = EasyDict()

_C.OUTPUT_DIR = "output"
_C.LOG_DIR = ""
_C.DATA_DIR = ""
_C.GPUS = [0]
_C.WORKERS = 4
_C.PRINT_FREQ = 20
_C.AUTO_RESUME = False
_C.PIN_MEMORY = True
_C.RANK = 0
_C.SEED = 0
_C.CONTINUE_FROM_BEST = False
_C.MODEL_BEST = ""

_C.CUDNN = EasyDict()
_C.CUDNN.BENCHMARK = True
_C.CUDNN.DETERMINISTIC = False  # posezoo: true also sets torch.use_deterministic_algorithms (warn-only)
_C.CUDNN.ENABLED = True

_C.MODEL = EasyDict()
_C.MODEL.NAME = "pose_hrnet"
_C.MODEL.INIT_WEIGHTS = True
_C.MODEL.PRETRAINED = ""
_C.MODEL.NUM_JOINTS = 17
_C.MODEL.TAG_PER_JOINT = True
_C.MODEL.TARGET_TYPE = "gaussian"
_C.MODEL.IMAGE_SIZE = [256, 256]  # width, height
_C.MODEL.HEATMAP_SIZE = [64, 64]  # width, height
_C.MODEL.SIGMA = 2.0
_C.MODEL.STYLE = "pytorch"  # SimpleBaseline: 'pytorch' or 'caffe' ResNet
# TARGET_TYPE megvii (MSPN/RSN/CPN, codecs/megvii.py): the cv2.GaussianBlur kernel
# of each model output's target, one per output in the model's order (the last is
# the decoded one), e.g. MSPN-2stg [15, 11, 9, 7, 11, 9, 7, 5].
_C.MODEL.TARGET_KERNELS = []
# posezoo speed/scale switches: NHWC memory layout for model and inputs (train and
# test); BatchNorm statistics synchronised across the processes of a torchrun job.
_C.MODEL.CHANNELS_LAST = False
# test time only (tools/test.py, PoseEstimator, the benchmark): fold every eval BatchNorm
# that reads only a convolution's output into that convolution (utils/fold_bn.py);
# same outputs to float rounding, about 10 % less CPU time for ResNet/HRNet.
_C.MODEL.FOLD_BN = False
_C.MODEL.SYNC_BN = False
_C.MODEL.EXTRA = EasyDict()

_C.LOSS = EasyDict()
_C.LOSS.NAME = ""  # '' = JointsMSELoss, or JointsOHKMMSELoss when USE_OHKM
_C.LOSS.USE_OHKM = False
_C.LOSS.TOPK = 8
# TARGET_TYPE megvii: the weight of each output's L2 loss (empty: 1 each), and the
# outputs trained with OHKM (top-TOPK joints) instead of the plain L2.
_C.LOSS.OUTPUT_WEIGHTS = []
_C.LOSS.OHKM_OUTPUTS = []
_C.LOSS.USE_TARGET_WEIGHT = True
_C.LOSS.USE_DIFFERENT_JOINTS_WEIGHT = False
_C.LOSS.REDUCTION = "mean"
_C.LOSS.KPD = 4.0

_C.DATASET = EasyDict()
_C.DATASET.ROOT = ""
_C.DATASET.DATASET = "mpii"
_C.DATASET.TRAIN_SET = "train"
_C.DATASET.TEST_SET = "valid"
_C.DATASET.DATA_FORMAT = "jpg"
_C.DATASET.HYBRID_JOINTS_TYPE = ""
_C.DATASET.SELECT_DATA = False
_C.DATASET.FLIP = True
_C.DATASET.SCALE_FACTOR = 0.25
_C.DATASET.ROT_FACTOR = 30.0
_C.DATASET.PROB_HALF_BODY = 0.0
_C.DATASET.NUM_JOINTS_HALF_BODY = 8
# posezoo: an extra training augmentation of the whole image before the crop: none | ccssl (the
# imgaug pipeline of CC-SSL, JitengMu/Learning-from-Synthetic-Animals synthetic_animal_sp.py:121-139:
# affine with per-axis scale and shear, Gaussian noise, Gaussian blur, linear contrast, each with
# probability 0.5 in a random order; datasets/strong_aug.py). The crop box stays the unaugmented one, as
# there; joints moved outside the image become unlabelled; DATASET.AUGMENTATION's draws (scale,
# rotation, flip) follow it.
_C.DATASET.STRONG_AUG = "none"
_C.DATASET.COLOR_RGB = False
# posezoo: the training augmentation: msra (HRNet/SimpleBaseline JointsDataset), or a stacked-hourglass
# release's own, bearpaw or princeton (datasets/release_augment.py; needs TEST.HEATMAP_DECODE of that name)
_C.DATASET.AUGMENTATION = "msra"
# posezoo: keypoint-set definition for custom COCO-format datasets (empty = the
# dataset's built-in definition, e.g. COCO person).
_C.DATASET.FLIP_PAIRS = []  # [[left, right], ...]; drawings colour the first as the left side
_C.DATASET.OKS_SIGMAS = []
_C.DATASET.JOINTS_WEIGHT = []
_C.DATASET.UPPER_BODY_IDS = []
# posezoo: input normalisation, (pixel / 255 - mean) / std per channel in the
# image's channel order; ImageNet's by default (HRNet, SimpleBaseline, LPN, DarkPose,
# UDP). Princeton's stacked hourglass takes pixel / 255 (mean 0, std 1).
# posezoo: box centre rule, x + (w - offset) / 2 (utils.transforms.BOX_CENTERS): hrnet
# (offset 0; HRNet, SimpleBaseline, UDP) | darkpose (offset 1); '' follows the codec
# (the DARK codec of DarkPose's YAMLs: darkpose; every other: hrnet).
_C.DATASET.BOX_CENTER = ""
# posezoo: how COCO-format GT boxes are clipped and kept (datasets/coco.py clean_gt_box): hrnet
# (x2 = x1 + w - 1, HRNet/SimpleBaseline) | mmpose (x2 = x + w clipped to the image, mmpose 1.x
# base_coco_style_dataset.py:284-290) | mmpose_0x (x2 = x1 + w, mmpose 0.x animal_pose_dataset.py:139-145).
_C.DATASET.GT_BOX = "hrnet"
# posezoo: the test-time box of Megvii's code (MSPN/RSN/CPN, COCO-format datasets): [] = HRNet's
# (aspect fit, then x1.25); [ex, ey] = width x ex and height x ey first, then the aspect fit,
# no 1.25 (MSPN/RSN JointsDataset.__getitem__ [1.09, 1.135]; pytorch-cpn mscocoMulti [1.2, 1.3]).
# Training boxes keep HRNet's rule.
_C.DATASET.TEST_BOX_EXTEND = []
_C.DATASET.INPUT_MEAN = [0.485, 0.456, 0.406]
_C.DATASET.INPUT_STD = [0.229, 0.224, 0.225]
# posezoo: a bearpaw-style mean.pth.tar ({'mean', 'std'} tensors, read with weights_only=True)
# replacing INPUT_MEAN/INPUT_STD by its mean and a std of 1, as bearpaw/CC-SSL's color_normalize
# (subtracts only); '' = use INPUT_MEAN/INPUT_STD. Absolute or relative to the working directory.
_C.DATASET.INPUT_MEAN_FILE = ""
# posezoo: skip (and count) unreadable images instead of stopping.
_C.DATASET.SKIP_CORRUPT_IMAGES = False
# posezoo: how a top-down sample reads its JPEG: whole (cv2.imread of the whole image, as the official
# JointsDataset) | region (only the rows and columns its crop's warp reads, through the system libjpeg-turbo:
# utils/jpeg_region.py; the same pixels and crop, measured equal on every JPEG layout tried; needs a C compiler,
# jpeglib.h and libjpeg, e.g. Debian's libjpeg62-turbo-dev, else one log line and whole). Region applies to the
# msra augmentation without DATASET.STRONG_AUG and codecs that warp; other images (PNG, CMYK JPEG) are read whole.
_C.DATASET.DECODE = "whole"
# posezoo: samples carry the uint8 crop and the loops normalise it on the model's device
# (utils/normalise.InputNormaliser: the same float32 inputs bit for bit; a quarter of the bytes through the
# DataLoader's workers and the host-to-device copy). Top-down 2D sets and Human3.6M testing.
_C.DATASET.UINT8_INPUTS = False
# ordinal depth labels per person (datasets/ordinal.py: JSON keyed by COCO annotation id or MPII
# person index, or the released ordinal.mat / .h5 with variable ord, N x K x K), trained by the
# volumetric codec's ordinal loss (MODEL.TARGET_TYPE volumetric)
_C.DATASET.ORDINAL_FILE = ""
# posezoo: one training loader over several datasets (datasets/mixed.py), e.g. Human3.6M with full 3D
# and MPII + ORDINAL_FILE, every batch holding each part's share (Pavlakos et al. CVPR 2018 mixed
# training): a list of {SET: split, DATASET: name ('' = DATASET.DATASET), ROOT: path ('' = DATASET.ROOT),
# RATIO: batch share, ORDINAL_FILE: path, JOINTS: [part joint per MODEL.NUM_JOINTS joint, -1 = none]}.
# [] = the training set is DATASET.TRAIN_SET alone. Test sets are never mixed.
_C.DATASET.MIX = []
# posezoo, depth datasets (NYU): crop recipe 'a2j' | 'awr', cube [x, y, z] in mm
# ([] = the recipe's own), box/centre shift for augmentation (a2j: pixels of the
# box corners, awr: std in mm of the centre), Gaussian depth noise (mm, the
# releases add none) and A2J's random-erasing probability.
_C.DATASET.DEPTH_CROP = "a2j"
_C.DATASET.CUBE_SIZE = []
_C.DATASET.SHIFT_FACTOR = 0.0
_C.DATASET.DEPTH_NOISE_STD = 0.0
_C.DATASET.RANDOM_ERASE_PROB = 0.0
# posezoo: appearance randomisation of top-down training crops (datasets/appearance.py), all off by
# default: colour jitter strength in [0, 1] (brightness/contrast/saturation x U[1-s, 1+s], hue
# U[-s/2, s/2] of the circle), probability of a grey crop, probability and largest sigma (crop
# pixels) of a Gaussian blur, largest std of Gaussian pixel noise (0-255). For synthetic sources
# (CC-SSL trains its rendered animals with strong augmentation).
_C.DATASET.COLOR_JITTER = 0.0
_C.DATASET.GRAY_PROB = 0.0
_C.DATASET.BLUR_PROB = 0.0
_C.DATASET.BLUR_SIGMA = 0.0
_C.DATASET.NOISE_STD = 0.0
# posezoo, Human3.6M (h36m, synthetic_h36m): the subjects a split keeps, e.g. [S9, S11];
# [] = protocol 1 by the split's name (train: S1 S5 S6 S7 S8; test/val: S9 S11).
_C.DATASET.SUBJECTS = []

_C.TRAIN = EasyDict()
# posezoo: the learning-rate schedule (core/schedule.py): multistep (x LR_FACTOR at the
# epochs in LR_STEP, per epoch) | warmup_linear (MSPN/RSN lib/utils/solver.py, per
# iteration: linear from WARMUP_FACTOR x LR to LR over WARMUP_ITERS iterations, then
# linear to 0 at MAX_ITER; MAX_ITER 0 = END_EPOCH x iterations per epoch).
_C.TRAIN.LR_SCHEDULER = "multistep"
_C.TRAIN.WARMUP_ITERS = 0
_C.TRAIN.WARMUP_FACTOR = 0.1
_C.TRAIN.MAX_ITER = 0
_C.TRAIN.LR_FACTOR = 0.1
_C.TRAIN.LR_STEP = [90, 110]
_C.TRAIN.LR = 0.001
_C.TRAIN.OPTIMIZER = "adam"
_C.TRAIN.MOMENTUM = 0.9
_C.TRAIN.WD = 0.0001
_C.TRAIN.ADAM_WEIGHT_DECAY = False
# posezoo: weight decay on conv/linear weights only, not on BatchNorm parameters or biases
# (TensorFlow releases such as tf-cpn regularise the weights alone)
_C.TRAIN.WD_WEIGHTS_ONLY = False
_C.TRAIN.NESTEROV = False
_C.TRAIN.GAMMA1 = 0.99
_C.TRAIN.GAMMA2 = 0.0
_C.TRAIN.BEGIN_EPOCH = 0
_C.TRAIN.END_EPOCH = 140
_C.TRAIN.RESUME = False
_C.TRAIN.CHECKPOINT = ""
_C.TRAIN.BATCH_SIZE_PER_GPU = 32
_C.TRAIN.SHUFFLE = True
# posezoo: the training strategy (core/strategy.py): "supervised" (one loss on labelled crops), or a strategy
# of core/adaptation.py, or a dotted module path exposing get_strategy(cfg)
_C.TRAIN.STRATEGY = "supervised"
# posezoo: mixed precision, false (off) | fp16 (with a GradScaler) | bf16. None
# stands for false so that YAML's `false` and the strings both pass the type
# check; posezoo.utils.utils.amp_dtype validates the value.
_C.TRAIN.AMP = None

_C.TEST = EasyDict()
_C.TEST.BATCH_SIZE_PER_GPU = 32
_C.TEST.FLIP_TEST = False
_C.TEST.POST_PROCESS = False
_C.TEST.SHIFT_HEATMAP = False
_C.TEST.USE_GT_BBOX = False
_C.TEST.IMAGE_THRE = 0.1
_C.TEST.NMS_THRE = 0.6
_C.TEST.SOFT_NMS = False
_C.TEST.OKS_THRE = 0.5
_C.TEST.COCOEVAL = "pycocotools"  # posezoo: pycocotools (reference) | faster_coco_eval (C++, same 10 stats, pip install faster-coco-eval)
_C.TEST.IN_VIS_THRE = 0.0
_C.TEST.COCO_BBOX_FILE = ""
_C.TEST.BBOX_THRE = 1.0
_C.TEST.MODEL_FILE = ""
# TARGET_TYPE megvii: BLUR_KERNEL is the official test.py's decode blur (MSPN/RSN 5,
# MPII 9, CPN 21); NORMALIZE_HEATMAP divides each map by its maximum first (CPN).
_C.TEST.NORMALIZE_HEATMAP = False
_C.TEST.BLUR_KERNEL = 0  # DarkPose: > 0 selects DARK decoding with this blur kernel (their YAMLs use 11)
# posezoo, UDP (TARGET_TYPE udp / offset, codecs/udp.py): which published decode.
# master: UDP-Pose master's (Gaussian: blur 7, rescale, Taylor step; offset:
# classification blur 15, offsets 7; BLUR_KERNEL must stay 0). mmpose: mmpose's
# post_dark_udp / CombinedTarget decode with kernel BLUR_KERNEL (0 = 11; offset:
# classification 2 * BLUR_KERNEL + 1), no rescale, joints with max <= 0 at (-1, -1).
# mmpose's valid_radius_factor * heatmap height is LOSS.KPD (0.0546875 * 64 = 3.5).
_C.TEST.UDP_FLAVOUR = "master"
# posezoo, TARGET_TYPE gaussian: whose Gaussian heatmap conventions, for encode and decode.
# msra: SimpleBaseline/HRNet (codecs/gaussian.py). bearpaw | princeton: the stacked-hourglass
# releases' own (codecs/hourglass.py: Gaussian at the truncated position; bearpaw final_preds,
# princeton HeatmapParser + test.py, around the 1-based MATLAB centre); their YAMLs set it.
# mmpose: msra with mmpose 1.x's MSRAHeatmap border rule for the quarter-pixel step (non-positive
# maxima at -1; x and y steps each where that axis is inside; codecs/utils/refinement.py:31-44).
_C.TEST.HEATMAP_DECODE = "msra"
_C.TEST.SOFT_ARGMAX = False  # LPN
_C.TEST.BIAS = 0.0  # LPN
_C.TEST.AMP = None  # posezoo: false | fp16 | bf16 for the forward pass; decoding stays float32
# posezoo: at most this many crops per model call at test time (the image + mirror batch
# included; 0 = the whole batch at once); 8 is fastest on CPU (docs/speed.md)
_C.TEST.FORWARD_CHUNK = 0
# posezoo, test time only (tools/test.py, PoseEstimator, the benchmark; never training's
# validation): the model through torch.compile (inductor) with weight freezing: prepacked
# convolution weights, conv + add + ReLU fused (utils/compile.py); float32 results equal the
# eager model's to rounding; one compile per input shape, tens of seconds on a CPU (docs/speed.md).
# Also the DARK and UDP decoders: compiled C++ kernels on CPU float32 outputs (codecs/compiled.py,
# built once with inductor's compiler, seconds; the plain decode where no compiler is found)
_C.TEST.COMPILE = False

# posezoo, CornerNet (codecs/cornernet.py, datasets/coco_det.py). Defaults: the
# official CornerNet-Lite configs/CornerNet.json with core/dbs/detection.py's
# defaults for the keys it leaves out.
_C.CORNERNET = EasyDict()
_C.CORNERNET.GAUSSIAN_IOU = 0.3  # corner Gaussian radius: IoU kept by displaced corners
_C.CORNERNET.MAX_OBJECTS = 128  # objects encoded per image (official max_tag_len)
_C.CORNERNET.TOP_K = 100  # corners per heatmap kept for pairing (Squeeze: 20)
_C.CORNERNET.AE_THRESHOLD = 0.5  # largest |tl - br| embedding distance of a pair
_C.CORNERNET.NMS_KERNEL = 3  # max-pool NMS on the corner heatmaps
_C.CORNERNET.NUM_DETS = 1000  # best pairs kept per image before soft-NMS
_C.CORNERNET.NMS_SIGMA = 0.5  # Gaussian soft-NMS sigma
_C.CORNERNET.NMS_MIN_SCORE = 0.001  # soft-NMS drops boxes below this score
_C.CORNERNET.MAX_PER_IMAGE = 100  # detections per image after soft-NMS
_C.CORNERNET.FLIP_TEST = True  # decode the mirrored image too (official)
# test scales: each image is resized by each, its pairs mapped back and all of
# them soft-NMSed together (official CornerNet-multi_scale.json: [0.5, 0.75, 1, 1.25, 1.5])
_C.CORNERNET.TEST_SCALES = [1.0]
# official merge_bbox: soft-NMS averages each kept box with the boxes it suppresses
# (weights: corner score x (1 - soft-NMS weight)^WEIGHT_EXP); multi_scale.json: True, 10
_C.CORNERNET.MERGE_BBOX = False
_C.CORNERNET.WEIGHT_EXP = 8.0
# soft-NMS as the official test keeps it (every row of each class's array, ties at the
# MAX_PER_IMAGE-th score kept; numpy) or 'batched' (torch on the device, the kept boxes only)
_C.CORNERNET.SOFT_NMS = "official"
_C.CORNERNET.PULL_WEIGHT = 0.1
_C.CORNERNET.PUSH_WEIGHT = 0.1
_C.CORNERNET.OFF_WEIGHT = 1.0
_C.CORNERNET.FOCAL_ALPHA = 2.0
_C.CORNERNET.FOCAL_BETA = 4.0  # (1 - y)^beta penalty reduction near corners
# training augmentation (official sample/cornernet.py): random crop of the image
# scaled by one of RAND_SCALES (min, max, step) around a centre at least BORDER
# from the edges, flip, colour jitter (brightness, contrast, saturation 0.4) and
# PCA lighting (std 0.1)
_C.CORNERNET.RAND_CROP = True
_C.CORNERNET.RAND_SCALES = [0.6, 1.4, 0.1]
_C.CORNERNET.BORDER = 128
_C.CORNERNET.RAND_COLOR = True
_C.CORNERNET.LIGHTING = True
# COCO detection classes: [] = all 80, or category ids, e.g. [1] (person)
_C.CORNERNET.CATEGORIES = []

# posezoo, volumetric 3D pose (MODEL.NAME c2f_vol, MODEL.TARGET_TYPE volumetric; Pavlakos et
# al. CVPR 2017 / 2018, docs/volumetric.md). Shared by the model and the codec.
_C.VOLUMETRIC = EasyDict()
# depth bins of each stack's output, coarse to fine (c2f-vol-train opts.lua -resZ); one per stack
_C.VOLUMETRIC.RES_Z = [1, 2, 4, 64]
# root-relative depth range in mm split into the bins (c2f-vol-demo matlab/utils/data/voxel_limits.mat)
_C.VOLUMETRIC.DEPTH_RANGE = [-1005.1859029814127, 980.8598618317474]
# decode by the volumetric soft-argmax (softmax(BETA x volume) per joint) instead of the argmax
_C.VOLUMETRIC.SOFT_ARGMAX = False
_C.VOLUMETRIC.BETA = 160.0
# ordinal ranking loss (CVPR 2018): its weight next to the volume L2 (0 = off), and its depth
# unit: units per bin of the 64-bin grid (ordinal-pose3d full-eval/main.lua:41-46 feeds (j - 32) x 10)
_C.VOLUMETRIC.ORDINAL_WEIGHT = 1.0
_C.VOLUMETRIC.ORDINAL_SCALE = 10.0

# posezoo: domain adaptation (TRAIN.STRATEGY ws_cda / cc_ssl, core/adaptation.py).
# posezoo, the reconstruction component of Pavlakos et al. CVPR 2018 (MODEL.TARGET_TYPE lifting,
# datasets h36m_lifting / synthetic_h36m_lifting, docs/h36m.md): 2D joints + ordinal depths -> metric 3D.
_C.LIFTING = EasyDict()
# the depth input: "bins" = the root-relative depth's bin among DEPTH_BINS over VOLUMETRIC.DEPTH_RANGE,
# as (bin - DEPTH_BINS / 2) / (DEPTH_BINS / 2) (ordinal-pose3d full-eval/main.lua:78); "ranks" = the
# joint's depth rank, scaled to [-1, 1] (only the order, what ordinal supervision determines)
_C.LIFTING.DEPTH_INPUT = "bins"
_C.LIFTING.DEPTH_BINS = 64
# std (mm) of the Gaussian noise added to each root-relative depth before binning / ranking, and of the
# 2D noise (pixels) added to the projected joints: the ConvNet's errors the paper simulates
_C.LIFTING.DEPTH_NOISE = 50.0
_C.LIFTING.KEYPOINT_NOISE = 2.0
# whether the test inputs are noisy too (each frame's noise drawn from its own seeded stream)
_C.LIFTING.TEST_NOISE = True
# synthetic_h36m_lifting: how many MoCap-style poses each split samples from the synthetic generator
_C.LIFTING.NUM_TRAIN = 20000
_C.LIFTING.NUM_TEST = 2000

_C.ADAPT = EasyDict()
# Extra domains next to DATASET.TRAIN_SET (domain 0, labelled, weight 1): a list of
# {DATASET: name ('' = DATASET.DATASET), ROOT: path ('' = DATASET.ROOT), SET: split,
#  LABELLED: bool, WEIGHT: pose-loss weight, OPTS: [DATASET.KEY, value, ...] overrides of that
#  domain's DATASET.* keys, e.g. its own augmentation, TRUTH: split}. cc_ssl pseudo-labels the first
#  unlabelled one.
# TRUTH (optional, diagnosis only, never trained on): a split of the same crops with their true
# keypoints (synthetic_animal: target_train_gt); each cc_ssl round then reports the precision of its
# kept pseudo-labels (core.adaptation.pseudo_label_precision). A target set with labels needs none.
_C.ADAPT.DOMAINS = []
# ws_cda (Cao et al. 2019): discriminator on the input of the model's last conv (or
# FEATURE_LAYER, a module name), gradient reversal with GRL_WEIGHT, domain loss weight.
_C.ADAPT.FEATURE_LAYER = ""
_C.ADAPT.GRL_WEIGHT = 1.0
_C.ADAPT.DOMAIN_WEIGHT = 0.1
_C.ADAPT.DISCRIMINATOR_CHANNELS = 64
# cc_ssl (Mu et al. 2020; CCSSL/CCSSL.py): supervised source epochs first, then a new
# round of pseudo-labels every EPOCHS_PER_ROUND epochs (official 10), kept share of the
# most confident target joints KEEP_START + KEEP_STEP x round up to KEEP_MAX (official
# 0.2, 0.2, 0.8), target loss weight TARGET_WEIGHT (official gamma_ 10), NUM_TRANSFORMS
# scale/rotation views (official 5, the first the identity; FLIP adds the mirror of
# each), optional spatial-consistency cut MAX_SPREAD (fraction of the heatmap side; 0 off)
# and confidence floor MIN_CONFIDENCE (0 off; not in the official code).
_C.ADAPT.SOURCE_EPOCHS = 0
_C.ADAPT.EPOCHS_PER_ROUND = 10
_C.ADAPT.KEEP_START = 0.2
_C.ADAPT.KEEP_STEP = 0.2
_C.ADAPT.KEEP_MAX = 0.8
_C.ADAPT.TARGET_WEIGHT = 10.0
_C.ADAPT.NUM_TRANSFORMS = 5
_C.ADAPT.SCALE_FACTOR = 0.25
_C.ADAPT.ROT_FACTOR = 30.0
_C.ADAPT.FLIP = True
_C.ADAPT.MAX_SPREAD = 0.0
_C.ADAPT.MIN_CONFIDENCE = 0.0
# PPLO-style pseudo-label selection (Cao et al. 2019, progressive pseudo-label optimisation):
# SELECTION pooled (CC-SSL: one ranked threshold over all target joints) | per_joint (each
# joint its own ranked threshold: every joint keeps its top share); THRESHOLDS a list of fixed
# confidence thresholds, one per round (the last repeats), replacing the ranked share (KEEP_*);
# MIN_KEPT_JOINTS: a crop trains only with at least that many kept joints (official CC-SSL: 1).
_C.ADAPT.SELECTION = "pooled"
_C.ADAPT.THRESHOLDS = []
_C.ADAPT.MIN_KEPT_JOINTS = 1
# cc_ssl's temporal constraint (consistency.py:90-119): on consecutive frames of one video
# (records with a "video" key, e.g. TigDog shots), Lucas-Kanade flow carries the previous
# frame's pseudo-label forward; flow moving a joint more than FLOW_MAX_DISPLACEMENT input-crop
# pixels is not trusted; a joint less confident than FLOW_DECAY x the carried one is replaced
# by it, with that decayed confidence.
_C.ADAPT.TEMPORAL = False
_C.ADAPT.FLOW_MAX_DISPLACEMENT = 15.0
_C.ADAPT.FLOW_DECAY = 0.9

_C.DEBUG = EasyDict()
_C.DEBUG.DEBUG = False
_C.DEBUG.SAVE_BATCH_IMAGES_GT = False
_C.DEBUG.SAVE_BATCH_IMAGES_PRED = False
_C.DEBUG.SAVE_HEATMAPS_GT = False
_C.DEBUG.SAVE_HEATMAPS_PRED = False

# SimpleBaseline spellings -> HRNet spellings (same meaning).
ALIASES = {
    "TRAIN.BATCH_SIZE": "TRAIN.BATCH_SIZE_PER_GPU",
    "TEST.BATCH_SIZE": "TEST.BATCH_SIZE_PER_GPU",
}
# SimpleBaseline keeps these under MODEL.EXTRA; they are hoisted to MODEL.
HOISTED_FROM_EXTRA = ("TARGET_TYPE", "HEATMAP_SIZE", "SIGMA")
