#!/usr/bin/env bash
# Device call 7: service load on CUDA (and CPU), then baselines + evaluate of the paper best.pt.
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
M=$(cat /tmp/method); [ "$M" = c ] || [ "$M" = b ] && export LD_LIBRARY_PATH=$(cat /tmp/nvlib)
echo "method $M LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-unset}"
grep -q '^EXIT' /tmp/paper.log || { echo "paper training still running"; tail -3 /tmp/paper.log; }
timeout 150 python3 -m bench.service_load --provider cuda --clients 16 --seconds 15 --out $OUT/svc_cuda 2>&1 | tail -12
[ "${SKIP_CPU:-0}" = 1 ] || timeout 150 python3 -m bench.service_load --provider cpu --clients 16 --seconds 15 --out $OUT/svc_cpu 2>&1 | tail -12
if [ "${EVAL:-1}" = 1 ] && [ -f /tmp/run_paper/best.pt ]; then
  mkdir -p $OUT/eval
  ( time timeout 100 python3 -c "from service.cli import app; app()" baselines --data /tmp/cohort20k.h5 --out-dir /tmp/baselines --n-boot 200 ) 2>&1 | tail -4
  ( time timeout 100 python3 -c "from service.cli import app; app()" evaluate --checkpoint /tmp/run_paper/best.pt --data /tmp/cohort20k.h5 --baselines /tmp/baselines/baselines.json --out-dir /tmp/eval_paper --n-boot 200 ) 2>&1 | tee $OUT/eval/log.txt | tail -30
  cp /tmp/eval_paper/report.md /tmp/eval_paper/report.json $OUT/eval/ 2>/dev/null; true
fi
