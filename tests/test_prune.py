"""kdloss prune: the requested GFLOPs reduction, a plain checkpoint, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from kdloss.adapters.ultralytics.data import make_shapes_dataset
from kdloss.adapters.ultralytics.prune import prune

TOLERANCE = 0.03  # one pruning step removes about 1 % of the prunable channels: under 2 % of the GFLOPs


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("prune") / "v8n.pt"
    model = DetectionModel("yolov8n.yaml", nc=6, verbose=False)
    model.names = {i: str(i) for i in range(6)}
    torch.save({"model": model, "train_args": {"imgsz": 64}}, path)
    return path


@pytest.mark.parametrize(("ratio", "method"), [(0.5, "lamp"), (0.3, "l1"), (0.4, "taylor")])
def test_prune_reaches_the_ratio_and_saves_a_plain_checkpoint(checkpoint, tmp_path, ratio, method):
    out = tmp_path / "pruned.pt"
    data = make_shapes_dataset(tmp_path / "shapes", train=4, val=4, imgsz=64)
    report = prune(checkpoint, data=data, ratio=ratio, method=method, output=out, imgsz=64)
    assert report.gflops_after <= (1 - ratio) * report.gflops_before
    assert report.gflops_after >= (1 - ratio - TOLERANCE) * report.gflops_before
    assert report.params_after < report.params_before
    assert isinstance(report.map50_95_before, float) and isinstance(report.map50_95_after, float)
    assert b"kdloss" not in out.read_bytes()  # nothing of kdloss is pickled into it
    code = ("import sys; sys.modules['kdloss'] = None\n"  # importing kdloss would fail here
            "import numpy as np\nfrom ultralytics import YOLO\n"
            f"m = YOLO({str(out)!r})\n"
            "r = m.predict(np.zeros((64, 64, 3), dtype=np.uint8), imgsz=64, verbose=False)\n"
            "print('OK', sum(p.numel() for p in m.model.parameters()))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"OK {report.params_after}" in result.stdout
    assert f"| {out.name} ({method}, ratio {ratio}) |" in report.table()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"ratio": 0}, "ratio=0: give the GFLOPs reduction as a fraction between 0 and 1"),
    ({"ratio": 1.5}, "ratio=1.5: give"),
    ({"method": "obd"}, r"method='obd' is not one of \('lamp', 'l1', 'l2', 'taylor'\)"),
    ({"method": "taylor"}, "method=taylor scores channels with the detection loss's gradients: give data=..."),
    ({"ratio": 0.99}, "ratio=0.99: only"),
])
def test_prune_errors(checkpoint, tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        prune(checkpoint, output=tmp_path / "p.pt", imgsz=64, **kwargs)


def test_prune_refuses_models_it_cannot_keep_plain(tmp_path):
    with pytest.raises(ValueError, match=r"kdloss prune handles YOLOv8-style models .* this one has C2PSA, C3k2"):
        prune("yolo11n.yaml", output=tmp_path / "p.pt", imgsz=64)


def test_prune_cli(checkpoint, tmp_path, capsys):
    from kdloss.adapters.cli import main

    assert main(["prune", f"model={tmp_path / 'missing.pt'}"]) == 2
    assert capsys.readouterr().err.strip() == f"kdloss prune: model={tmp_path / 'missing.pt'}: no such file"
    assert main(["prune", "ratio=0.5"]) == 2
    assert main(["prune", f"model={checkpoint}", "ratio=0.2", f"output={tmp_path / 'c.pt'}", "imgsz=64"]) == 0
    assert "saved: " in capsys.readouterr().out and (tmp_path / "c.pt").exists()


def test_taylor_scores_come_from_the_detection_loss_gradients(tmp_path):
    from kdloss.adapters.ultralytics.prune import _TaylorGradients

    data = make_shapes_dataset(tmp_path / "shapes", train=4, val=4, imgsz=64)
    net = DetectionModel("yolov8n.yaml", nc=6, verbose=False).eval()
    for p in net.parameters():  # as prune() does
        p.requires_grad_(True)
    gradients = _TaylorGradients(net, data, 64)
    gradients.compute()
    grads = [p.grad for name, p in net.named_parameters() if ".dfl." not in name]  # DFL's fixed bins: no loss path
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    assert all(m.training is False for m in net.modules())  # BatchNorm statistics untouched
    gradients.restore()
    assert net.criterion is None and not hasattr(net, "args")
