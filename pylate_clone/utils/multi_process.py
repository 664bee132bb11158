"""Multi-process encoding: one worker process per device."""

from __future__ import annotations

import logging
import math
import queue
from typing import Any, Protocol

import numpy as np
import torch
import torch.multiprocessing as mp

logger = logging.getLogger(__name__)


class Encoder(Protocol):
    """What a worker needs of a model (``ColBERT`` satisfies it)."""

    def encode(self, sentences: list[str], **kwargs: Any) -> Any: ...

    def to(self, device: str) -> Any: ...

    def share_memory(self) -> Any: ...


def _worker(target_device: str, model: Encoder, inputs: Any, outputs: Any) -> None:
    while True:
        try:
            chunk_id, sentences, kwargs = inputs.get()
        except queue.Empty:
            break
        try:
            embeddings = model.encode(
                sentences,
                device=target_device,
                show_progress_bar=False,
                convert_to_numpy=True,
                **kwargs,
            )
            outputs.put((chunk_id, embeddings, None))
        except Exception as error:  # reported to the parent, which raises it
            outputs.put((chunk_id, None, repr(error)))


def start_pool(
    model: Encoder, target_devices: list[str] | None = None
) -> dict[str, Any]:
    """Start spawned workers sharing ``model``'s weights; see ``ColBERT.start_multi_process_pool``."""
    if target_devices is None:
        if torch.cuda.is_available():
            target_devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        else:
            target_devices = ["cpu"] * 4
    if not target_devices:
        raise ValueError("target_devices must name at least one device.")
    model.to("cpu")
    model.share_memory()
    context = mp.get_context("spawn")
    inputs = context.Queue()
    outputs = context.Queue()
    processes = []
    for device in target_devices:
        process = context.Process(
            target=_worker, args=(device, model, inputs, outputs), daemon=True
        )
        process.start()
        processes.append(process)
    return {"input": inputs, "output": outputs, "processes": processes}


def encode_with_pool(
    pool: dict[str, Any],
    sentences: list[str],
    chunk_size: int | None,
    encode_kwargs: dict[str, Any],
) -> list[np.ndarray]:
    """Split ``sentences`` into chunks, encode them in the pool, return per-sentence arrays in order."""
    if chunk_size is None:
        chunk_size = min(math.ceil(len(sentences) / len(pool["processes"]) / 10), 5000)
    chunk_size = max(int(chunk_size), 1)
    n_chunks = 0
    for start in range(0, len(sentences), chunk_size):
        pool["input"].put(
            (n_chunks, sentences[start : start + chunk_size], encode_kwargs)
        )
        n_chunks += 1
    results: dict[int, list[np.ndarray]] = {}
    for _ in range(n_chunks):
        chunk_id, embeddings, error = pool["output"].get()
        if error is not None:
            raise RuntimeError(f"An encoding worker failed: {error}")
        results[chunk_id] = embeddings
    return [
        embedding for chunk_id in range(n_chunks) for embedding in results[chunk_id]
    ]


def stop_pool(pool: dict[str, Any]) -> None:
    """Terminate the workers and close the queues of ``pool``."""
    for process in pool["processes"]:
        process.terminate()
    for process in pool["processes"]:
        process.join()
        process.close()
    pool["input"].close()
    pool["output"].close()
