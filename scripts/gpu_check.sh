#!/usr/bin/env bash
# Device check: on a machine with an NVIDIA GPU, set up an environment with fefm-lab[gpu],
# generate a full-size synthetic Criteo file (45,840,617 rows, the real file's size), train the
# paper preset (experiment=paper_criteo) for a fixed number of steps on the GPU, and write
# samples/s, GPU memory and test AUC to results/gpu/gpu_check_gpu.{json,md}.
#
#   scripts/gpu_check.sh                       # the check (needs nvidia-smi and a CUDA driver)
#   scripts/gpu_check.sh --cpu --small         # the same pipeline on the CPU, small (tests)
#
# Options:
#   --steps N      training steps (default 2000; --small: 20)
#   --rows N       rows of the synthetic file (default 45840617; --small: 20000)
#   --python PY    use this Python's environment instead of creating one
#   --venv DIR     environment to create or reuse (default .gpu-check-venv)
#   --work DIR     data file, prepared data, MLflow store (default .gpu-check)
#   --out DIR      where the results go (default results/gpu)
#   --cpu          train on the CPU (installs fefm-lab[cpu]; results gpu_check_cpu.*)
#   --small        small data and few steps: checks the pipeline, measures nothing useful
#   --override K=V a further fefm-lab override for the training run (repeatable)
set -euo pipefail
cd "$(dirname "$0")/.."

device=gpu steps="" rows="" python="" venv=.gpu-check-venv work=.gpu-check out=results/gpu small=0
overrides=()
while [ $# -gt 0 ]; do
    case "$1" in
        --steps) steps="$2"; shift 2 ;;
        --rows) rows="$2"; shift 2 ;;
        --python) python="$2"; shift 2 ;;
        --venv) venv="$2"; shift 2 ;;
        --work) work="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --cpu) device=cpu; shift ;;
        --small) small=1; shift ;;
        --override) overrides+=(--override "$2"); shift 2 ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "gpu_check.sh: unknown option $1 (--help lists them)" >&2; exit 2 ;;
    esac
done
if [ "$small" = 1 ]; then
    steps="${steps:-20}" rows="${rows:-20000}"
else
    steps="${steps:-2000}" rows="${rows:-45840617}"
fi

say() { echo "gpu_check: $*" >&2; }

if [ "$device" = gpu ]; then
    if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
        say "no NVIDIA GPU visible (nvidia-smi missing or failing); --cpu runs the CPU variant"
        exit 1
    fi
    nvidia-smi -L >&2
fi

# 1. The environment. The CPU and CUDA builds of TensorFlow both install the `tensorflow`
#    package, so the environment gets exactly one: fefm-lab[gpu] or fefm-lab[cpu].
if [ -z "$python" ]; then
    if [ ! -x "$venv/bin/python" ]; then
        say "creating $venv"
        python3 -m venv "$venv"
        "$venv/bin/python" -m pip install -q --upgrade pip
    fi
    say "installing fefm-lab[$device] into $venv"
    "$venv/bin/python" -m pip install -q -e ".[$device]"
    python="$venv/bin/python"
fi
"$python" - "$device" <<'EOF'
import sys
from fefm_lab.training.device import import_tensorflow
tf = import_tensorflow()
cuda = tf.test.is_built_with_cuda()
print(f"gpu_check: TensorFlow {tf.__version__}, CUDA build: {cuda}, "
      f"GPUs: {tf.config.list_physical_devices('GPU')}", file=sys.stderr)
if sys.argv[1] == "gpu" and not cuda:
    sys.exit("gpu_check: this environment has a CPU-only TensorFlow; "
             "pip uninstall -y tensorflow-cpu && pip install -e '.[gpu]'")
EOF

# 2. The data: a synthetic Criteo-format file of the requested size (kept between runs).
mkdir -p "$work"
data="$work/criteo_synthetic_${rows}.txt"
if [ ! -s "$data" ]; then
    say "writing $rows synthetic Criteo rows to $data"
    "$python" -m fefm_lab.cli synth synth.format=criteo "synth.rows=$rows" "synth.path=$data" \
        "paths.root_dir=$work"
fi

# 3. Train the paper preset for $steps steps, evaluate, write the results.
small_overrides=()
if [ "$small" = 1 ]; then
    # a few steps at the paper's learning rate leave the model worse than the click rate, which
    # the divergence check rejects: small runs learn faster
    small_overrides=(--override dataset.min_count=1 --override trainer.eval_batch_size=4096
        --override trainer.learning_rate=0.1)
fi
"$python" scripts/gpu_check.py --data "$data" --steps "$steps" --device "$device" \
    --root "$work" --out "$out" "${small_overrides[@]}" "${overrides[@]}"
