"""gather_across_devices really gathers: 2 torchrun processes (gloo, CPU)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from pylate_clone import utils


def test_helpers_without_process_group():
    assert utils.get_rank() == 0
    assert utils.get_world_size() == 1
    tensor = torch.ones(2, 3, requires_grad=True)
    assert utils.all_gather(tensor)[0] is tensor
    assert utils.all_gather_with_gradients(tensor)[0] is tensor


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_gather_across_devices(fixtures_dir):
    script = Path(__file__).with_name("_dist_gather.py")
    env = dict(
        os.environ,
        TINY_COLBERT=str(fixtures_dir / "models" / "tiny-colbert"),
        OMP_NUM_THREADS="1",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
    )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_addr=127.0.0.1",
            f"--master_port={_free_port()}",
            str(script),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    for rank in (0, 1):
        assert f"[rank {rank}] ok CachedContrastive DDP gradients" in output, output
        assert f"[rank {rank}] ok uneven batch sizes" in output, output
