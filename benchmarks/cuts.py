"""The cuts issue 13 proposed, each measured against what kdloss does now (interleaved rounds, median ms).

    python -m benchmarks.cuts                    # CPU, one torch thread (as ultralytics trains on 2 cores)
    python -m benchmarks.cuts --json benchmarks/cuts-cpu.json

Teacher forward (yolov8s, the frozen teacher of the demo; kdloss runs it under ``no_grad``):

- the teacher as loaded under ``no_grad`` (``fold_teacher=False``) against ``inference_mode``, a copy with
  every Conv+BatchNorm folded into one conv (kdloss's default since this benchmark showed it pays:
  ``adapters/ultralytics/model.py`` ``fold_conv_bn``; the teacher's own weights untouched) and that copy in
  channels_last;
- whether ``inference_mode`` can be used at all: its outputs go into losses that save them for the student's
  backward, which torch refuses for inference tensors.

Construction of :class:`KDDistillationModel` (start-up): the whole constructor, against ultralytics'
``DistillationModel`` constructor alone (its dummy forward at batch 2 and a throw-away projector), which
kdloss calls, and kdloss's own probe forward (batch 1). Skipping ultralytics' constructor was tried and not
kept: its projector draws from torch's random stream, so without it every distilled run (align-conv
initialisation onwards) would change and no committed result would be reproduced bit for bit, for a saving
of the order of this measurement.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch


def median_ms(fns: dict, rounds: int) -> dict[str, float]:
    times = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(1000 * (time.perf_counter() - start))
    return {name: round(statistics.median(values), 1) for name, values in times.items()}


def teacher_forward(imgsz: int, batch: int, rounds: int) -> dict:
    from ultralytics.nn.tasks import DetectionModel

    from kdloss.adapters.ultralytics.folding import fold_conv_bn

    torch.manual_seed(0)
    teacher = DetectionModel("yolov8s.yaml", nc=6, verbose=False).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    for m in teacher.modules():  # trained-like BatchNorm statistics, so that folding changes the weights
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.5, 0.5)
    folded = fold_conv_bn(teacher)
    folded_cl = fold_conv_bn(teacher).to(memory_format=torch.channels_last)
    x = torch.rand(batch, 3, imgsz, imgsz)
    x_cl = x.contiguous(memory_format=torch.channels_last)

    def run(model, inputs, mode):
        def call():
            with mode():
                return model(inputs)
        return call

    fns = {"no_grad, as loaded": run(teacher, x, torch.no_grad),
           "inference_mode": run(teacher, x, torch.inference_mode),
           "folded Conv+BN (kdloss)": run(folded, x, torch.no_grad),
           "folded + channels_last": run(folded_cl, x_cl, torch.no_grad)}
    times = median_ms(fns, rounds)
    with torch.no_grad():
        max_diff = (teacher(x)[0] - folded(x)[0]).abs().max().item()
    with torch.inference_mode():
        t_out = teacher(x)[1]["scores"]
    s_out = torch.randn_like(t_out, requires_grad=True)
    try:
        (s_out.sigmoid() * t_out).sum().backward()  # the teacher's scores weight a loss, as BCKD's do
        inference_mode_usable = True
    except RuntimeError:
        inference_mode_usable = False
    base = times["no_grad, as loaded"]
    return {"ms": times, "ratio_to_as_loaded": {k: round(v / base, 3) for k, v in times.items()},
            "folded_max_abs_diff": max_diff, "inference_mode_usable_in_losses": inference_mode_usable}


def construction(imgsz: int, rounds: int) -> dict:
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.distill_model import DistillationModel
    from ultralytics.nn.tasks import DetectionModel

    from kdloss.adapters.ultralytics import DistillConfig, KDDistillationModel

    def models():
        student = DetectionModel("yolov8n.yaml", nc=6, verbose=False)
        student.args = get_cfg(overrides={"imgsz": imgsz})
        return DetectionModel("yolov8s.yaml", nc=6, verbose=False), student

    pairs = {"kdloss": [models() for _ in range(rounds)], "ultralytics": [models() for _ in range(rounds)]}
    probe = []
    times = {"KDDistillationModel (whole)": [], "DistillationModel.__init__ (dummy forward, projector)": []}
    for (t1, s1), (t2, s2) in zip(pairs["kdloss"], pairs["ultralytics"]):
        start = time.perf_counter()
        model = KDDistillationModel(t1, s1, DistillConfig())
        times["KDDistillationModel (whole)"].append(1000 * (time.perf_counter() - start))
        start = time.perf_counter()
        DistillationModel(t2, s2)
        times["DistillationModel.__init__ (dummy forward, projector)"].append(1000 * (time.perf_counter() - start))
        start = time.perf_counter()
        model._probe_feature_shapes()
        probe.append(1000 * (time.perf_counter() - start))
    result = {name: round(statistics.median(values), 1) for name, values in times.items()}
    result["kdloss probe forward (batch 1)"] = round(statistics.median(probe), 1)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imgsz", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = {"imgsz": args.imgsz, "batch": args.batch, "threads": args.threads, "torch": torch.__version__,
              "machine": platform.processor() or platform.machine(),
              "teacher_forward": teacher_forward(args.imgsz, args.batch, args.rounds),
              "construction_ms": construction(args.imgsz, max(3, args.rounds // 2))}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
