"""Under DistributedDataParallel (2 CPU processes, gloo on loopback) the learnable distillation parts
are gradient-synchronised like the student's own weights, and the teacher is left out."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    from kdloss.adapters.ultralytics import DistillConfig, KDDistillationModel

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    torch.manual_seed(0)  # identical initial weights on both ranks, as DDP expects

    def build(yaml):
        model = DetectionModel(yaml, nc=6, verbose=False)
        model.args = get_cfg(overrides={"imgsz": 64})
        return model

    model = KDDistillationModel(build("yolov8s.yaml"), build("yolov8n.yaml"), DistillConfig(feature_loss="mgd"))
    model.train()
    ddp = DistributedDataParallel(model, find_unused_parameters=True)
    g = torch.Generator().manual_seed(100 + rank)  # each rank sees different images
    batch = {"img": torch.rand(2, 3, 64, 64, generator=g), "batch_idx": torch.tensor([0.0, 1.0]),
             "cls": torch.tensor([[1.0], [2.0]]), "bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.1, 0.1]])}
    loss, _ = ddp(batch)
    loss.sum().backward()
    torch.save({name: p.grad.clone() for name, p in model.projector.named_parameters()}, f"{out}/grads{rank}.pt")
    torch.save([p.grad is None for p in model.teacher_model.parameters()], f"{out}/teacher{rank}.pt")
    dist.destroy_process_group()


def test_projector_gradients_are_all_reduced(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    grads = [torch.load(tmp_path / f"grads{rank}.pt") for rank in range(2)]
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=f"{name} not synchronised")
    assert any(g.abs().sum() > 0 for g in grads[0].values())
    for rank in range(2):
        assert all(torch.load(tmp_path / f"teacher{rank}.pt"))  # the teacher gets no gradient anywhere
