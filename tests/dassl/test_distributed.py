"""Distributed data-parallel training on CPU (gloo): averaged gradients, synced initial state, and a real
two-process PromptKD run through the run script (``LAUNCH=torchrun``) in which only the main process writes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from dassl.utils.distributed import all_reduce_gradients, broadcast_from_main, is_main_process, world_size
from tests.conftest import REPO_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        weight = torch.nn.Parameter(torch.full((2, 3), float(rank)))
        bias = torch.nn.Parameter(torch.zeros(4))
        frozen = torch.nn.Parameter(torch.ones(1), requires_grad=False)  # no grad: skipped on every process
        weight.grad = torch.full((2, 3), rank + 1.0)
        bias.grad = torch.arange(4.0) * (rank + 1)
        all_reduce_gradients([weight, frozen, bias])
        broadcast_from_main([weight])
        torch.save(
            {"weight_grad": weight.grad, "bias_grad": bias.grad, "weight": weight.data, "main": is_main_process(),
             "world": world_size()},
            Path(out) / f"rank{rank}.pt",
        )  # fmt: skip
    finally:
        dist.destroy_process_group()


def test_gradients_are_averaged_and_state_comes_from_the_main_process(tmp_path):
    mp.spawn(_worker, args=(_free_port(), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for r, got in enumerate(ranks):
        torch.testing.assert_close(got["weight_grad"], torch.full((2, 3), 1.5))  # mean of 1 and 2
        torch.testing.assert_close(got["bias_grad"], torch.arange(4.0) * 1.5)
        torch.testing.assert_close(got["weight"], torch.zeros(2, 3))  # rank 0's values
        assert got["main"] == (r == 0) and got["world"] == 2


def test_one_process_is_a_no_op():
    p = torch.nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    all_reduce_gradients([p])
    broadcast_from_main([p])
    assert world_size() == 1 and is_main_process()
    torch.testing.assert_close(p.grad, torch.full((2,), 3.0))


@pytest.mark.slow
def test_two_process_promptkd_run_through_the_script(tmp_path):
    from tools.demo import Demo, student_opts

    demo = Demo(tmp_path, "cpu", epochs=2)
    demo.teacher()  # stage 1 in this process
    env = dict(
        os.environ, DATA=str(demo.assets.data), OUTPUT=str(tmp_path / "out"), PYTHON=sys.executable,
        LAUNCH=f"{sys.executable} -m torch.distributed.run --standalone --nproc_per_node 2", CUDA_VISIBLE_DEVICES="",
    )  # fmt: skip
    teacher = tmp_path / "runs" / "PromptSRC_teacher" / "train_base" / "VLPromptLearner"
    proc = subprocess.run(
        ["bash", "scripts/promptkd/base2new_train.sh", "demo", "1", "TRAINER.PROMPTKD.TEACHER_CKPT", str(teacher),
         *student_opts(demo.assets, epochs=2)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "torch.distributed.run --standalone --nproc_per_node 2 train.py" in proc.stdout  # what the script ran

    run = tmp_path / "out" / "base2new/train_base/demo/shots_0/PromptKD/vit_b16_c2_ep20_batch8_4+4ctx/seed_1"
    assert [p.name for p in run.glob("log.txt*")] == ["log.txt"]  # written once, by the main process
    log = (run / "log.txt").read_text()
    assert "Distributed training: 2 processes (gloo); batch size 8 per process" in log
    n_train = len(json.loads((demo.assets.data / "demo" / "split_demo.json").read_text())["train"])
    per_process = -(-n_train // 2) // 8  # each process takes half of every epoch
    assert f"epoch [2/2] batch [{per_process}/{per_process}]" in log
    results = json.loads((run / "results.json").read_text())
    assert results["base"]["epoch"] == results["novel"]["epoch"] and "final" in results
    assert [e["split"] for e in results["evaluations"]].count("val") == 2  # one evaluation per epoch, not per process
    assert (run / "VLPromptLearner" / "model.pth.tar-2").is_file()
