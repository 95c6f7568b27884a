#!/usr/bin/env bash
# The GPU measurement of the Keras backends on a GPU machine that has PyTorch and JAX with CUDA
# but no TensorFlow and no network (what reaches it is copied over with the working tree).
#   here:  bash harness/scripts/gpu_device.sh fetch     wheels the harness needs there (~40 MB,
#                                      Python 3.12, x86-64) and MNIST into .whl/ (git-ignored)
#   there: bash harness/scripts/gpu_device.sh run jax   (with .whl/ copied over; then torch)
# `run BACKEND` installs the carried wheels beside the machine's own torch/jax, runs the smoke
# sweep and the full units_mnist study on the GPU with that backend, samples GPU utilisation
# once a second, and leaves in $OUT/BACKEND/: the report (units_mnist/report.md, summary.csv with
# s/epoch per size), the MLflow database (per-epoch times of every run) and the utilisation log.
set -euo pipefail
cd "$(dirname "$0")/../.."
WHEELS=.whl
# What the harness needs that the GPU machine lacks (its own numpy, pandas, matplotlib, scipy,
# rich, torch and jax stay); versions as in requirements.txt.
NEEDED=(keras==3.15.1 hydra-core==1.3.8 mlflow==3.17.2 hydra-joblib-launcher==1.2.0)

fetch() {
  grep -qxF "/$WHEELS/" .git/info/exclude 2>/dev/null || echo "/$WHEELS/" >>.git/info/exclude
  rm -rf "$WHEELS" && mkdir -p "$WHEELS"
  # hydra-core's antlr4 runtime 4.9.3 exists only as source: build its (pure Python) wheel here.
  python3 -m pip wheel -q --no-deps -w "$WHEELS" antlr4-python3-runtime==4.9.3
  python3 -m pip download -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
    --find-links "$WHEELS" -d "$WHEELS" "${NEEDED[@]}"
  # Drop what such a machine has already (numpy, pandas, ... beside torch/jax): two versions of
  # one package stop the install there, and at most 64 MiB can be copied over.
  (cd "$WHEELS" && rm -f numpy-* pandas-* scipy-* matplotlib-* pillow-* requests-* urllib3-* \
    certifi-* idna-* charset_normalizer-* packaging-* protobuf-* pyyaml-* PyYAML-* jinja2-* \
    markupsafe-* MarkupSafe-* werkzeug-* click-* rich-* markdown_it_py-* mdurl-* pygments-* \
    h5py-* ml_dtypes-* absl_py-* cloudpickle-* joblib-* pyarrow-* psutil-* typing_extensions-* \
    contourpy-* cycler-* fonttools-* kiwisolver-* pyparsing-* python_dateutil-* six-* \
    threadpoolctl-* scikit_learn-* tzdata-* pytz-* anyio-* h11-* zipp-* attrs-* Markdown-* \
    markdown-* prometheus_client-* httpx-* httpcore-* narwhals-* typing_inspect-* aiohttp-* \
    aiohappyeyeballs-* aiosignal-* annotated_doc-* frozenlist-* multidict-* propcache-* yarl-*)
  .venv/bin/python -c "import numpy as np; from harness import data
(x_train, y_train), (x_test, y_test) = data.load_mnist()
np.savez_compressed('$WHEELS/mnist.npz', x_train=x_train, y_train=y_train, x_test=x_test,
                    y_test=y_test)"  # Keras's mnist.npz format
  du -sh "$WHEELS"
}

run() {
  local backend=$1 out=${OUT:?run on the device machine, where OUT is set}/$1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site "$WHEELS"/*.whl
  export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 MLFLOW_TRACKING_URI=sqlite:////tmp/gpu.db
  mkdir -p "$out"
  nvidia-smi -L | tee "$out/gpu.txt"
  local common=(backend="$backend" device=gpu data.path="$PWD/$WHEELS/mnist.npz"
                hydra.sweep.dir=/tmp/hydra)
  python3 -m harness smoke "${common[@]}" report.out=/tmp/reports
  nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 1 \
    >"$out/utilisation.csv" &
  local sampler=$!
  local started=$SECONDS
  python3 -m harness units_mnist --jobs=4 "${common[@]}" report.out="$out" 2>&1 \
    | tee "$out/units_mnist.log" | tail -20
  echo "units_mnist wall: $((SECONDS - started)) s" | tee -a "$out/units_mnist.log"
  kill $sampler
  cp /tmp/gpu.db "$out/mlflow.db"
}

case ${1:-} in
  fetch) fetch ;;
  run) run "${2:?backend: jax or torch}" ;;
  *) echo "usage: $0 fetch | run jax|torch" >&2; exit 2 ;;
esac
