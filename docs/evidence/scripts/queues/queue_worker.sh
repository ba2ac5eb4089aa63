#!/usr/bin/env bash
# One queue worker: claims one (project, method, seed) job at a time from QUEUE/jobs.txt (mkdir is the
# lock) and runs it with the frozen kdloss snapshot SNAPSHOT (git archive of a commit, adapters/ moved to
# kdloss/adapters), so code edits in the work tree do not change a running sweep. Start two, e.g.
#   nohup bash queue_worker.sh runs/evidence/queue6 /work/snap6 A > runs/evidence/queue6/workerA.log 2>&1 &
# Usage: queue_worker.sh QUEUE SNAPSHOT NAME
# Job lines: project|data|teacher|student|method|seed[|epochs] (epochs: 30 when not given)
set -u
queue=$(realpath "$1") snapshot=$(realpath "$2") name=$3
export YOLO_OFFLINE=1 YOLO_AUTOINSTALL=0 PYTHONPATH=$snapshot
kdloss=$(realpath "$(dirname "$0")/../../../../.venv/bin/kdloss")
evidence=$(dirname "$queue")
cd "$snapshot"
n=0
while IFS='|' read -r project data teacher student method seed epochs; do
  n=$((n+1))
  [ -z "$project" ] && continue
  mkdir "$queue/claim-$n" 2>/dev/null || continue
  epochs=${epochs:-30}
  echo "$(date +%T) worker $name job $n: $project $method seed $seed, $epochs epochs"
  "$kdloss" experiment data="$data" teacher="$teacher" student="$student" methods="$method" \
    seeds="[$seed]" epochs="$epochs" imgsz=128 batch=32 workers=2 device=cpu amp=False plots=False \
    project="$evidence/$project" > "$queue/job-$n.log" 2>&1
  echo "$(date +%T) worker $name job $n rc=$?"
done < "$queue/jobs.txt"
echo "$(date +%T) worker $name finished"
