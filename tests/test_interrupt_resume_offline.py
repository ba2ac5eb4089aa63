"""A distillation run as a user lives it: started with relative paths, interrupted (SIGINT) after its first
epoch's checkpoint, resumed from another working directory; no connection leaves the machine meanwhile."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
from conftest import BLOCK_KDLOSS
from ultralytics import YOLO

from kdloss.adapters.ultralytics.data import make_shapes_dataset

pytestmark = pytest.mark.slow
EPOCHS = 4
TRAIN = ["imgsz=64", "batch=8", "workers=0", "plots=False", "amp=False", "device=cpu", "seed=0", f"epochs={EPOCHS}"]

# Prepended to the child process: every connection or name lookup that is not loopback is written to the file in
# KDLOSS_NET_LOG and refused, as an offline machine would.
GUARD = textwrap.dedent("""
    import ipaddress, json, os, socket

    def _outside(host):
        if host in (None, "", "localhost"):
            return False
        try:
            return not ipaddress.ip_address(str(host).split("%")[0]).is_loopback
        except ValueError:
            return True  # a host name: its lookup would leave the machine

    def _refuse(what, target):
        with open(os.environ["KDLOSS_NET_LOG"], "a") as log:
            log.write(json.dumps([what, str(target)]) + "\\n")
        raise OSError(f"network blocked by the test: {what} {target}")

    _connect, _connect_ex, _getaddrinfo = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and _outside(address[0]):
            _refuse("connect", address)
        return _connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6) and _outside(address[0]):
            _refuse("connect", address)
        return _connect_ex(self, address)

    def getaddrinfo(host, *args, **kwargs):
        if _outside(host):
            _refuse("getaddrinfo", host)
        return _getaddrinfo(host, *args, **kwargs)

    socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
""")

# Prepended to the first run only: once the first epoch's checkpoint is written, the run says so in the file in
# KDLOSS_PAUSED and waits there (at most a minute), so the test's Ctrl-C lands after that checkpoint however fast
# the machine trains; the interrupt itself is a real SIGINT from outside.
PAUSE = textwrap.dedent("""
    import time
    from ultralytics.utils.callbacks.base import default_callbacks

    def _pause_after_first_checkpoint(trainer):
        if trainer.epoch == 0:
            open(os.environ["KDLOSS_PAUSED"], "w").write(str(trainer.epoch))
            time.sleep(60)

    default_callbacks["on_model_save"].append(_pause_after_first_checkpoint)
""")


def kdloss_process(args: list[str], cwd: Path, net_log: Path, paused: Path | None = None) -> subprocess.Popen:
    main = f"import sys\nfrom kdloss.adapters.cli import main\nsys.exit(main({args!r}))\n"
    code = GUARD + (PAUSE if paused else "") + main
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST")}  # as a user's shell
    env.update(KDLOSS_NET_LOG=str(net_log), YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0")
    if paused:
        env["KDLOSS_PAUSED"] = str(paused)
    return subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def rows(run: Path) -> list[dict[str, str]]:
    with open(run / "results.csv") as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]


def test_interrupted_run_resumes_from_another_directory_offline(tmp_path):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    make_shapes_dataset(work / "shapes", train=32, val=8, imgsz=64)
    YOLO("yolov8n.yaml").train(data=str(work / "shapes" / "data.yaml"), project=str(tmp_path / "t"), name="t",
                               epochs=1, imgsz=64, batch=8, workers=0, plots=False, amp=False, device="cpu",
                               exist_ok=True, verbose=False)
    (work / "teacher.pt").write_bytes((tmp_path / "t" / "t" / "weights" / "best.pt").read_bytes())
    teacher_hash = sha256(work / "teacher.pt")
    net_log = tmp_path / "net.log"
    net_log.touch()

    # relative teacher and data paths, as typed by a user in their project folder
    paused = tmp_path / "paused"
    first = kdloss_process(["distill", "student=yolov8n.yaml", "teacher=teacher.pt", "data=shapes/data.yaml",
                            f"project={work / 'runs'}", "name=r", *TRAIN], work, net_log, paused)
    run = work / "runs" / "r"
    last = run / "weights" / "last.pt"
    deadline = time.time() + 300
    while not paused.exists() and first.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert paused.exists() and last.exists(), first.communicate()[0].replace("\r", "\n")[-3000:]
    first.send_signal(signal.SIGINT)
    first_log = first.communicate(timeout=120)[0]
    assert first.returncode != 0, "the run finished before it was interrupted: make it longer"
    checkpoint = torch.load(last, map_location="cpu", weights_only=False)
    stopped_after = checkpoint["epoch"] + 1  # epochs done when interrupted (0-based epoch of the checkpoint)
    assert stopped_after == 1, first_log[-2000:]  # interrupted in the pause after the first checkpoint
    assert Path(checkpoint["train_args"]["distill_model"]).is_absolute()
    assert Path(checkpoint["train_args"]["data"]).is_absolute()

    second = kdloss_process(["distill", f"resume={last}"], elsewhere, net_log)
    second_log = second.communicate(timeout=600)[0]
    assert second.returncode == 0, second_log[-3000:]
    assert f"from epoch {stopped_after + 1}" in second_log.replace("Resuming training", ""), second_log[-3000:]
    assert not (elsewhere / "runs").exists()  # continued in the run's own folder
    table = rows(run)
    assert [int(row["epoch"]) for row in table] == list(range(1, EPOCHS + 1))
    for row in table:  # distillation columns in every epoch, before and after the interruption
        assert float(row["train/kdcls_loss"]) > 0 and float(row["train/kdbox_loss"]) > 0, row
    assert sha256(work / "teacher.pt") == teacher_hash
    refused = [json.loads(line) for line in net_log.read_text().splitlines()]
    assert refused == [], f"connections attempted outside loopback: {refused}"

    check = BLOCK_KDLOSS + textwrap.dedent(f"""
        import numpy as np
        from ultralytics import YOLO
        for name in ("last.pt", "best.pt"):
            model = YOLO({str(run / "weights")!r} + "/" + name)
            assert type(model.model).__name__ == "DetectionModel", type(model.model)
            model.predict(np.zeros((64, 64, 3), np.uint8), imgsz=64, verbose=False)
        print("ok")
    """)
    plain = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                           env={**os.environ, "YOLO_OFFLINE": "1"})
    assert plain.returncode == 0 and "ok" in plain.stdout, plain.stderr[-2000:]
