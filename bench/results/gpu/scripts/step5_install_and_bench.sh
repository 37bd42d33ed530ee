#!/usr/bin/env bash
# Device call 5: assemble + install onnxruntime-gpu, probe CUDA library loading (a/b/c), run
# bench/gpu_inference.py with the first method that gives CUDAExecutionProvider.
export PYTHONUNBUFFERED=1
W=/tmp/w; WHL=$W/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
mkdir -p $W && cp .gpu/p5/* $W/ && cat $W/part0 $W/part1 $W/part2 $W/part3 $W/part4 > $WHL
echo "05d548956197b9d01f59b625de740e0d6be3593f874e241a12dc0362650ecdf7  $WHL" | sha256sum -c - || exit 3
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site $WHL .gpu/svc/*.whl 2>&1 | grep -v -i warning | tail -5
export PYTHONPATH=/tmp/site:$PWD
NV=$(python3 -c "import nvidia; print(list(nvidia.__path__)[0])")
NVLIB=$(find "$NV" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)
echo "$NVLIB" > /tmp/nvlib
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
  python3 -c "import torch, onnxruntime as o, numpy; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| ORT', o.__version__, o.__file__, o.get_available_providers(), '| numpy', numpy.__version__)"
  echo "nvidia lib dirs: $NVLIB"; } 2>&1 | tee $OUT/versions.txt
PROBE="from service.runtime import OnnxModel, load_bundle; m = OnnxModel(load_bundle('models/default'), 'cuda'); print('PROVIDER', m.provider, m.session.get_providers())"
RAW="import onnxruntime as o; s = o.InferenceSession('models/default/model.onnx', providers=['CUDAExecutionProvider', 'CPUExecutionProvider']); print('RAW PROVIDERS', s.get_providers())"
{ echo "=== (a) plain"; python3 -c "$PROBE" 2>&1 | tail -8
  echo "=== (a) raw ORT session, default logging"; python3 -c "$RAW" 2>&1 | tail -8
  echo "=== (b) preload_dlls"; python3 -c "import onnxruntime as o; o.preload_dlls(); o.print_debug_info() if hasattr(o, 'print_debug_info') else None; $PROBE" 2>&1 | tail -25
  echo "=== (c) LD_LIBRARY_PATH"; LD_LIBRARY_PATH=$NVLIB python3 -c "$PROBE" 2>&1 | tail -8
} 2>&1 | tee $OUT/cuda_probe.txt
M=none
if grep -A8 '=== (a) plain' $OUT/cuda_probe.txt | grep -q 'PROVIDER CUDAExecutionProvider'; then M=a
elif grep -A25 '=== (b)' $OUT/cuda_probe.txt | grep -q 'PROVIDER CUDAExecutionProvider'; then M=b
elif grep -A8 '=== (c)' $OUT/cuda_probe.txt | grep -q 'PROVIDER CUDAExecutionProvider'; then M=c; fi
echo "METHOD $M" | tee -a $OUT/cuda_probe.txt; echo $M > /tmp/method
mkdir -p $OUT/bench
case $M in
  a) python3 -m bench.gpu_inference --bundle models/default --out $OUT/bench ;;
  b) python3 -c "import onnxruntime as o, runpy, sys; o.preload_dlls(); sys.argv = ['gpu_inference', '--out', '$OUT/bench']; runpy.run_module('bench.gpu_inference', run_name='__main__')" ;;
  c) LD_LIBRARY_PATH=$NVLIB python3 -m bench.gpu_inference --bundle models/default --out $OUT/bench ;;
  *) echo "no CUDA method worked" ;;
esac 2>&1 | grep -v '^|' | tee $OUT/bench/log.txt
