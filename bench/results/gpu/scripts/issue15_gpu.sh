#!/usr/bin/env bash
# GPU host check: the service's CUDA path with IO binding (bench/gpu_inference.py), then bulk
# Arrow over HTTP with `--workers 1` and `4` sharing the one GPU, 16 and 64 clients
# (bench/service_load.py: samples/s, the GPU's share used over HTTP, CPU per sample). ~6 min.
#
# The device has no internet and Python 3.12 without the service's web stack or onnxruntime-gpu
# (244 MB: more than one call carries), so the wheels travel in .whl/ (git-ignored):
#   here:   bash bench/results/gpu/scripts/issue15_gpu.sh prep     # .whl/svc/*, .whl/ort/part.*
#   device: one call per part but the last, carry [".whl/ort/part.aa"] etc., command
#             bash bench/results/gpu/scripts/issue15_gpu.sh stage   # keeps it in /tmp/ort
#           then carry [".whl/svc", ".whl/ort/part.ae"], command
#             bash bench/results/gpu/scripts/issue15_gpu.sh        # results in $OUT
# (calls back to back: the machine forgets /tmp when it goes back after 30 s idle).
set -u -o pipefail
ORT=onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
ORT_SHA=05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7  # PyPI's
SVC="fastapi==0.165.0 starlette==1.10.0 annotated-types==0.8.0 pydantic==2.14.4
  pydantic-core==2.50.5 pydantic-settings==2.16.3 python-dotenv==1.2.4 typing-inspection==0.4.5
  sqlalchemy==2.1.9 alembic==1.20.1 mako==1.4.3 python-multipart==0.0.34 hl7==0.4.5
  hl7apy==1.3.5 fastapi-offline==1.7.7 uvicorn==0.54.0 httptools==0.9.0"

if [ "${1:-}" = prep ]; then  # here, in the repo root
  grep -qx '/.whl/' "$(git rev-parse --git-path info/exclude)" \
    || echo /.whl/ >> "$(git rev-parse --git-path info/exclude)"
  get() { python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 "$@"; }
  mkdir -p .whl/svc .whl/ort && get -d .whl/svc $SVC && get -d /tmp/ortwhl onnxruntime-gpu==1.31.1 \
    && echo "$ORT_SHA  /tmp/ortwhl/$ORT" | sha256sum -c - \
    && split -b 55M "/tmp/ortwhl/$ORT" .whl/ort/part. && ls -la .whl/svc .whl/ort
  exit
fi
if [ "${1:-}" = stage ]; then  # device: keep this call's parts for the last call
  mkdir -p /tmp/ort && cp .whl/ort/part.* /tmp/ort/ && ls -la /tmp/ort; exit
fi

export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
LOG=$OUT/log.txt
{
  mkdir -p /tmp/ort && cp .whl/ort/part.* /tmp/ort/ 2>/dev/null
  cat /tmp/ort/part.* > /tmp/$ORT && echo "$ORT_SHA  /tmp/$ORT" | sha256sum -c - || exit 3
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
    /tmp/$ORT .whl/svc/*.whl 2>&1 | grep -v -i warning
  # CUDA/cuDNN from the image's torch wheels, in case onnxruntime does not find them itself
  NV=$(python3 -c "import nvidia, sys; print(list(nvidia.__path__)[0])" 2>/dev/null)
  [ -n "$NV" ] && export LD_LIBRARY_PATH=$(find "$NV" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)
  { nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c "import onnxruntime as o, numpy; print('ORT', o.__version__, o.__file__, o.get_available_providers(), '| numpy', numpy.__version__)"
    python3 -c "from service.runtime.onnx_model import OnnxModel; from service.runtime.bundle import load_bundle; m = OnnxModel(load_bundle('models/default'), 'cuda'); print('PROVIDER', m.provider, 'io_binding', m.io_binding)"
  } 2>&1 | tee $OUT/versions.txt
  grep -q 'PROVIDER CUDAExecutionProvider' $OUT/versions.txt || { echo "no CUDA provider"; exit 4; }
  timeout 150 python3 -m bench.gpu_inference --batches 1,8,32,256,1024 --repeats 5 \
    --min-seconds 1 --parity-sets 256 --out $OUT
  timeout 330 python3 -m bench.service_load --modes bulk-arrow --bulk 64 --provider cuda \
    --precision fp32 --workers 1 4 --clients 16 64 --seconds 12 --repeats 2 \
    --offline-seconds 3 --name service_load_gpu --out $OUT
} 2>&1 | tee $LOG
