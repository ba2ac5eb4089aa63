#!/usr/bin/env bash
# Queue worker (second queue): waits for the first queue's worker of the same name, then claims one
# (project, method, seed) job at a time from queue5/jobs.txt (mkdir is the lock) and runs it with the frozen
# snapshot /work/snap3 (kdloss with CrossKD), so code edits in /work/main do not change running sweeps.
set -u
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 PYTHONPATH=/work/snap3
E=/work/main/runs/evidence
while pgrep -f "worker4.sh $1" > /dev/null; do sleep 10; done
cd /work/snap3
n=0
while IFS='|' read -r project data teacher student method seed; do
  n=$((n+1))
  [ -z "$project" ] && continue
  mkdir "$E/queue5/claim-$n" 2>/dev/null || continue
  echo "$(date +%T) worker $1 job $n: $project $method seed $seed"
  /work/main/.venv/bin/kdloss experiment data=$data teacher=$teacher student=$student methods=$method \
    seeds=[$seed] epochs=30 imgsz=128 batch=32 workers=2 device=cpu amp=False plots=False project=$E/$project \
    > "$E/queue5/job-$n.log" 2>&1
  echo "$(date +%T) worker $1 job $n rc=$?"
done < "$E/queue5/jobs.txt"
echo "$(date +%T) worker $1 finished"
