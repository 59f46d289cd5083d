#!/usr/bin/env bash
# The prepared GPU check: every CUDA path of wasserflow once, at most 8 minutes on one GPU.
#
#   bash benchmarks/gpu_check.sh                 # from the repository root, on a GPU machine
#   OUT=/tmp/gpu bash benchmarks/gpu_check.sh    # where the log and the JSON go (default ./gpu-check)
#
# Steps (each under its own time limit; a failing step is logged and the next one runs):
#  1. env        torch, CUDA, the device's name and memory
#  2. train      the CLI on CUDA: OT-CFM with the UNet on 8 x 8 digits in fp32, then in bf16 with
#                torch.compile, Adam's fused kernel and channels-last; sample and evaluate each
#  3. throughput benchmarks/gpu_throughput.py on TorchCFM's CIFAR-10 UNet (35.75 M parameters,
#                batch 128): wasserflow's engine beside TorchCFM's loop and a plain PyTorch loop,
#                fp32 and bf16 + compile + fused (then with CUDA graphs: reduce-overhead);
#                Euler sampling NFE/s beside a plain loop; in fp32, a profile of 10 steps of each
#                loop (the top kernels, and how busy the GPU is: launch- or sync-bound steps show)
#  4. mnist      benchmarks/images.py's MNIST protocol (UNet size "mnist"), short budget, when the
#                MNIST test images are at $MNIST (default .gpudata/t10k-images-idx3-ubyte.gz)
#  5. flowmap    MeanFlow's JVP target through the UNet on CUDA (forward-mode AD through the
#                convolutions and attention kernels), then its one- and few-jump samples
#  6. torchrun   the data-parallel path on NCCL: 2 ranks where 2 GPUs exist, else 1
#
# Python packages missing on the machine (POT, TorchCFM) are installed from wheels in .whl/ when
# that folder exists (see /work/.library/device/README.md in the development workplace).
set -u
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-check}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
if [ -d .whl ]; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/wf-site .whl/*.whl || exit 1
    export PYTHONPATH=/tmp/wf-site
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH}
export PYTHONUNBUFFERED=1
MNIST=${MNIST:-.gpudata/t10k-images-idx3-ubyte.gz}
ONLY=${ONLY:-env,train,throughput,mnist,flowmap,torchrun}
LOG="$OUT/gpu_check.log"
: >"$LOG"
T0=$(date +%s)

step() { # step NAME SECONDS COMMAND...: run one step under a limit, log it, never stop the script
    local name=$1 limit=$2
    shift 2
    case ",$ONLY," in *",${name%%-*},"*) ;; *) return 0 ;; esac
    local start
    start=$(date +%s)
    echo "=== $name (limit ${limit}s, at $((start - T0))s)" | tee -a "$LOG"
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG" | tail -n 40
    local rc=${PIPESTATUS[0]}
    echo "=== $name rc=$rc in $(($(date +%s) - start))s" | tee -a "$LOG"
}

WF="$PY -m wasserflow"
UNET_DIGITS=(--method otcfm --data digits_images --model unet --batch-size 128 --lr 2e-3)
FAST=(--set train.precision=bf16 --set train.compile=true --set train.fused=true
    --set train.channels_last=true)

step env 60 $PY -c "
import torch, sys
print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)
print('devices', torch.cuda.device_count(), [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
p = torch.cuda.get_device_properties(0); print('memory GiB', round(p.total_memory / 2**30, 1), 'SMs', p.multi_processor_count)
import ot, torchcfm, wasserflow; print('pot', ot.__version__, 'torchcfm', torchcfm.__version__)
"
step train-fp32 90 $WF train "${UNET_DIGITS[@]}" --steps 300 --device cuda -o /tmp/wf-fp32
step train-fp32-sample 60 $WF sample /tmp/wf-fp32 --nfe 8 --n 512 --device cuda -o /tmp/wf-fp32-samples.npz
step train-fp32-evaluate 90 $WF evaluate /tmp/wf-fp32 --nfe 2,8 --n 1000 --device cuda
step train-fast 150 $WF train "${UNET_DIGITS[@]}" "${FAST[@]}" --steps 300 --device cuda -o /tmp/wf-fast
step train-fast-evaluate 90 $WF evaluate /tmp/wf-fast --nfe 2,8 --n 1000 --device cuda
step throughput-fp32 180 $PY benchmarks/gpu_throughput.py --config cifar --steps 100 --warmup 20 \
    --profile 10 --profile-top 12
step throughput-fast 200 $PY benchmarks/gpu_throughput.py --config cifar --steps 100 --warmup 30 \
    --precision bf16 --compile --fused --loops plain,wasserflow
step throughput-graphs 200 $PY benchmarks/gpu_throughput.py --config cifar --steps 100 --warmup 30 \
    --precision bf16 --compile --compile-mode reduce-overhead --fused --loops plain,wasserflow
if [ -f "$MNIST" ]; then
    step mnist 150 $PY benchmarks/images.py --data "mnist:$MNIST" --net mnist --device cuda \
        --seconds 30 --seeds 0 --n 2000 --nfes 1,2,8 --only wasserflow-otcfm \
        --json "$OUT/mnist.json"
fi
step flowmap 120 $WF train --method meanflow --data digits_images --model unet --batch-size 128 \
    --lr 2e-3 --steps 300 --device cuda -o /tmp/wf-meanflow
step flowmap-evaluate 90 $WF evaluate /tmp/wf-meanflow --nfe 1,2,4 --n 1000 --device cuda
NGPU=$($PY -c "import torch; print(min(2, torch.cuda.device_count()))" 2>/dev/null || echo 1)
step torchrun 120 $PY -m torch.distributed.run --standalone --nproc-per-node "$NGPU" \
    -m wasserflow train "${UNET_DIGITS[@]}" --steps 200 --device cuda -o /tmp/wf-ddp
echo "=== total $(($(date +%s) - T0))s; log in $LOG" | tee -a "$LOG"
