#!/usr/bin/env bash
# The checks a lent GPU machine is for, in one run (issue 15's GPU rows): the CUDA path of training and
# testing through torchrun (NCCL), TRAIN.AMP / TEST.AMP bf16 and fp16, CUDA against CPU predictions of the
# same checkpoint, and the GPU figures (forward crops/s, every decoder's crops/s at 10k and 100k crops,
# peak memory). Each step's output goes to $OUT/<step>.log and a summary line to stdout; a failing step
# does not stop the others. About 6 minutes on one H100; on a machine without CUDA the same steps run on
# the CPU with smaller sizes (how this script is tested).
#
#   OUT=/tmp/device_check bash tools/device_check.sh        # the device tool sets OUT
#   SIZES=2000,5000 EPOCHS=1 bash tools/device_check.sh     # smaller
#
# The device machine has PyTorch, OpenCV, SciPy, TensorBoard and h5py but not pycocotools or easydict. Here,
# in the repo's root, once (then carry .whl; the script installs it into /tmp/site first):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#       -d .whl pycocotools easydict
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-output/device_check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        && export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD/lib:${PYTHONPATH:-} PYTHONUNBUFFERED=1
CUDA=$($PY -c "import torch; print(int(torch.cuda.is_available()))")
if [ "$CUDA" = 1 ]; then DEVICE=cuda; SIZES=${SIZES:-10000,100000}; EPOCHS=${EPOCHS:-2}; FP16=fp16
else DEVICE=cpu; SIZES=${SIZES:-2000,5000}; EPOCHS=${EPOCHS:-1}; FP16=bf16; fi  # CPU fp16 autocast crawls
SYN=experiments/synthetic/pose_resnet_18_128x96.yaml
W32=experiments/coco/hrnet/w32_256x192_adam_lr1e-3.yaml
RUN=$OUT/synthetic
FAILED=0

step() {  # step NAME COMMAND...: run it, keep its log, print one line
    local name=$1; shift
    local start=$SECONDS
    "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    [ $rc -ne 0 ] && FAILED=$((FAILED + 1))
    echo "== $name: rc $rc, $((SECONDS - start)) s ($OUT/$name.log)"
    tail -n "${TAIL:-4}" "$OUT/$name.log" | sed 's/^/   /'
}

step environment $PY -c "import torch, cv2, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'device', torch.cuda.get_device_name() if torch.cuda.is_available() else 'cpu', 'cv2', cv2.__version__, \
'numpy', numpy.__version__)"
# NCCL on CUDA (utils/distributed.py picks it), gloo on the CPU; bf16 autocast in training
step train_ddp_bf16 $PY -m torch.distributed.run --standalone --nproc_per_node 1 tools/train.py --cfg $SYN OUTPUT_DIR $RUN \
    TRAIN.END_EPOCH $EPOCHS TRAIN.AMP bf16 WORKERS 4
MODEL=$(ls -d $RUN/synthetic/pose_resnet/*/ 2>/dev/null | head -n 1)model_best.pth
step test_fp32 $PY tools/test.py --cfg $SYN OUTPUT_DIR $OUT/test_fp32 TEST.MODEL_FILE $MODEL WORKERS 4
step test_fp16 $PY tools/test.py --cfg $SYN OUTPUT_DIR $OUT/test_fp16 TEST.MODEL_FILE $MODEL TEST.AMP $FP16 WORKERS 4
step test_cpu env CUDA_VISIBLE_DEVICES= $PY tools/test.py --cfg $SYN OUTPUT_DIR $OUT/test_cpu TEST.MODEL_FILE $MODEL \
    WORKERS 4
step train_fp16_uint8 $PY tools/train.py --cfg $SYN OUTPUT_DIR $OUT/fp16 TRAIN.END_EPOCH 1 TRAIN.AMP $FP16 \
    WORKERS 4 DATASET.UINT8_INPUTS True
# the same checkpoint's keypoints on the device and on the CPU (GT boxes): the largest difference in pixels
step compare_cpu $PY -c "import json, sys, numpy as np
a, b = ([np.array(r['keypoints']).reshape(-1, 3) for r in json.load(open(f))] for f in sys.argv[1:])
d = np.abs(np.stack(a) - np.stack(b)); print(f'{len(a)} instances: max |xy| diff {d[..., :2].max():.2e} px, score {d[..., 2].max():.2e}')" \
    {$OUT/test_fp32,$OUT/test_cpu}/synthetic/pose_resnet/pose_resnet_18_128x96/results/keypoints_val2017_gt_results_0.json
# GPU figures: the forward (with and without flip test), every decoder at each size, peak memory
TAIL=40 step bench_gpu $PY tools/benchmark.py --cfg $W32 --device $DEVICE --stages forward,decode,memory \
    --decoders "${SIZES##*,}" --scaling "$SIZES"
echo "== $FAILED step(s) failed; AP with GT boxes (fp32 / fp16 / cpu):"
for t in test_fp32 test_fp16 test_cpu; do grep -h "^| pose_resnet" "$OUT/$t.log" | head -n 1; done
exit $FAILED
