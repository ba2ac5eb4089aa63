"""How far apart BCKD's two normalisers are (``avg_factor=target_scores`` vs ``positives``), on four
training batches of the shapes data (seeded, with the training augmentation), for an untrained yolov8n,
the pruned yolov8n and the shipped teacher. Run from the repository root once the evidence scripts have
written the data and the pruned checkpoint:

    YOLO_OFFLINE=1 .venv/bin/python docs/evidence/scripts/avg_factor_probe.py

Output recorded in docs/evidence/avg-factor-probe.txt.
"""

import torch
from torch.utils.data import DataLoader
from ultralytics import YOLO
from ultralytics.cfg import get_cfg
from ultralytics.data import build_yolo_dataset
from ultralytics.data.utils import check_det_dataset
from ultralytics.nn.tasks import load_checkpoint
from ultralytics.utils.torch_utils import init_seeds

init_seeds(0, deterministic=True)
data = check_det_dataset("runs/evidence/shapes/data.yaml")
cfg = get_cfg(overrides={"imgsz": 128, "batch": 32})
dataset = build_yolo_dataset(cfg, data["train"], 32, data, mode="train", stride=32)
batches = []
for batch, _ in zip(DataLoader(dataset, batch_size=32, shuffle=True, collate_fn=dataset.collate_fn), range(4)):
    batch["img"] = batch["img"].float() / 255
    batches.append(batch)
objects = sum(len(batch["cls"]) for batch in batches)
models = {"untrained yolov8n": YOLO("yolov8n.yaml").model,
          "pruned yolov8n": load_checkpoint("runs/evidence/pruned/yolov8n-shapes-pruned.pt")[0],
          "teacher yolov8s": load_checkpoint("assets/shapes-yolov8s-teacher.pt")[0]}
for name, model in models.items():
    model = model.float().train()
    model.args = cfg
    model.criterion = model.init_criterion()
    seen = {"scores": 0.0, "positives": 0}

    def record(_module, _inputs, out, seen=seen):
        seen["scores"] += out[2].sum().item()
        seen["positives"] += out[3].sum().item()

    hook = model.criterion.assigner.register_forward_hook(record)
    with torch.no_grad():
        for batch in batches:
            model.loss(batch)
    hook.remove()
    print(f"{name}: {objects} objects in {len(batches)} batches, {seen['positives']} positive anchors, target scores "
          f"sum {seen['scores']:.1f}, ratio {seen['positives'] / seen['scores']:.1f}")
