#!/usr/bin/env bash
# Device call 6: synthetic cohort, cpu preset 3 epochs, paper preset (detached, 6 min budget).
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
mkdir -p $OUT/train_cpu $OUT/train_paper
python3 -c "import torch; print('torch', torch.__version__, 'cuda available', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
python3 -c "from service.cli import app; app()" train --help 2>&1 | grep -E -- '--(max-minutes|preset|epochs)' | head -3
( time python3 -c "from service.cli import app; app()" simulate --out /tmp/cohort20k.h5 --patients 20000 --seed 0 ) 2>&1 | tail -5
( time python3 -c "from service.cli import app; app()" train --data /tmp/cohort20k.h5 --run-dir /tmp/run_cpu --preset cpu --epochs 3 ) 2>&1 | tee $OUT/train_cpu/log.txt | tail -8
cp /tmp/run_cpu/history.csv /tmp/run_cpu/loss_curve.png $OUT/train_cpu/ 2>/dev/null
setsid nohup bash -c "( time python3 -c \"from service.cli import app; app()\" train --data /tmp/cohort20k.h5 --run-dir /tmp/run_paper --preset paper --max-minutes 6 ) > /tmp/paper.log 2>&1; echo EXIT \$? >> /tmp/paper.log" > /dev/null 2>&1 < /dev/null &
sleep 20; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv | tee $OUT/train_paper/nvidia_smi.txt
end=$((SECONDS + ${WAIT:-480}))
while [ $SECONDS -lt $end ] && ! grep -q '^EXIT' /tmp/paper.log; do sleep 5; done
tail -12 /tmp/paper.log; cp /tmp/paper.log $OUT/train_paper/log.txt
cp /tmp/run_paper/history.csv /tmp/run_paper/loss_curve.png $OUT/train_paper/ 2>/dev/null; true
