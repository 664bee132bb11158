"""Worker for tests/test_distributed.py, run as ``torchrun --nproc_per_node 2``.

Each rank takes its half of a fixed batch; with ``gather_across_devices=True`` its
loss must equal the mean per-query loss of its rows when every query is scored
against the documents of *both* ranks, and the DDP-averaged gradients must equal
those of one process training on the concatenated batch.
"""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
import torch.nn.functional as F

from pylate_clone import losses, models, utils

torch.set_num_threads(1)


def split(batch: dict, prefixes: list[str]) -> list[dict]:
    return [
        {k[len(p) + 1 :]: v for k, v in batch.items() if k.startswith(p + "_")}
        for p in prefixes
    ]


def rows_slice(features: list[dict], begin: int, end: int) -> list[dict]:
    return [{k: v[begin:end] for k, v in f.items()} for f in features]


def grads_of(model, loss_fn, features) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    loss = loss_fn(features)
    loss.backward()
    grads = {
        n: p.grad.detach().clone()
        for n, p in model.named_parameters()
        if p.grad is not None
    }
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


def check(name: str, condition: bool, detail: str = "") -> None:
    if not condition:
        print(f"[rank {dist.get_rank()}] FAILED {name} {detail}", flush=True)
        sys.exit(1)
    print(f"[rank {dist.get_rank()}] ok {name} {detail}", flush=True)


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    check("helpers", utils.get_rank() == rank and utils.get_world_size() == world == 2)

    model = models.ColBERT(model_name_or_path=os.environ["TINY_COLBERT"], device="cpu")
    model.eval()
    texts = [
        "what do cats eat?",
        "capital of france",
        "how to bake bread",
        "sort a python list",
        "Cats eat fish and meat.",
        "Paris is the capital of France.",
        "Mix flour, water and yeast, then bake.",
        "Use sorted(xs) to order a list!",
        "The stock market fell on Monday.",
        "Berlin is a city in Germany.",
        "The match ended in a draw.",
        "Bananas are rich in potassium.",
    ]
    rows = [
        {"query": texts[i], "positive": texts[4 + i], "negative": texts[8 + i]}
        for i in range(4)
    ]
    batch = utils.ColBERTCollator(model.tokenize)(rows)
    full = split(batch, ["query", "positive", "negative"])
    per_rank = 2
    local = rows_slice(full, rank * per_rank, (rank + 1) * per_rank)

    # Reference, single process: per-query losses over the concatenated batch.
    with torch.no_grad():
        embeddings = [
            F.normalize(model(dict(f))["token_embeddings"], dim=-1) for f in full
        ]
        masks = losses._common.extract_skiplist_mask(full, model.skiplist)
        docs = torch.stack(embeddings[1:], dim=1)
        scores = losses.contrastive.ColBERTScores()(
            embeddings[0], docs, documents_mask=torch.stack(masks[1:], dim=1)
        )
        per_query = F.cross_entropy(scores, torch.arange(4) * 2, reduction="none")
    expected_local = per_query[rank * per_rank : (rank + 1) * per_rank].mean().item()

    for loss_name, make in [
        ("Contrastive", lambda: losses.Contrastive(model, gather_across_devices=True)),
        (
            "CachedContrastive",
            lambda: losses.CachedContrastive(
                model, mini_batch_size=1, gather_across_devices=True
            ),
        ),
    ]:
        value, grads = grads_of(model, make(), local)
        check(
            f"{loss_name} loss sees the other rank's documents",
            abs(value - expected_local) < 1e-5,
            f"{value:.6f} vs {expected_local:.6f}",
        )
        no_gather, _ = grads_of(model, losses.Contrastive(model), local)
        check(
            f"{loss_name} differs from the local-only loss",
            abs(no_gather - value) > 1e-4,
        )

        # DDP averages parameter gradients over ranks.
        names = sorted(grads)
        for name in names:
            dist.all_reduce(grads[name])
            grads[name] /= world
        ref_value, ref_grads = grads_of(model, losses.Contrastive(model), full)
        diff = sum(float((grads[n] - ref_grads[n]).double().norm() ** 2) for n in names)
        norm = sum(float(ref_grads[n].double().norm() ** 2) for n in names)
        worst = (diff / norm) ** 0.5
        check(
            f"{loss_name} DDP gradients equal the single-process ones",
            worst < 1e-4,
            f"relative L2 difference {worst:.2e}",
        )
        mean_value = torch.tensor(value)
        dist.all_reduce(mean_value)
        check(
            f"{loss_name} mean rank loss equals the full-batch loss",
            abs(mean_value.item() / world - ref_value) < 1e-5,
        )

    # Uneven batches (last batch of an epoch): rank 0 has 1 row, rank 1 has 3.
    bounds = [(0, 1), (1, 4)][rank]
    uneven = rows_slice(full, *bounds)
    value = losses.Contrastive(model, gather_across_devices=True)(uneven).item()
    expected = per_query[bounds[0] : bounds[1]].mean().item()
    check("uneven batch sizes gather correctly", abs(value - expected) < 1e-5)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
