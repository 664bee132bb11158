"""GradCache version of :class:`Contrastive`: large batches at small activation memory."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
import tqdm
from sentence_transformers.base.losses.gradcache import CachedLossMixin, RandContext
from torch import Tensor

from ..scores import ColBERTScores
from ..utils.validation import check_int
from ._base import ColBERTLoss, check_temperature
from ._common import (
    Columns,
    Labels,
    Masks,
    chunked_scores,
    embed,
    stack_documents,
)
from .contrastive import contrastive_labels

# RandContext is sentence-transformers' (it also replays the MPS generator);
# re-exported because PyLate users import it from here.
__all__ = ["CachedContrastive", "RandContext"]


class CachedContrastive(ColBERTLoss, CachedLossMixin):
    """:class:`Contrastive` computed with GradCache (Gao et al., 2021).

    The batch is embedded in mini-batches of ``mini_batch_size`` rows without a
    graph, the loss is computed on the detached embeddings and its gradients with
    respect to them are cached; the backward pass then re-embeds each mini-batch
    (replaying the dropout RNG) and back-propagates the cached gradients. Peak
    activation memory is that of one mini-batch, whatever the batch size, while the
    in-batch negatives are those of the whole batch. The three GradCache steps
    (and the DDP synchronisation of the replay) are sentence-transformers'
    ``CachedLossMixin``; this class supplies the ColBERT embedding and loss.

    Loss value and gradients equal :class:`Contrastive`'s on the same batch (up to
    float rounding): the cached gradients are those of the returned loss (the
    mean when ``size_average=True``), as GradCache intends (PyLate's differ; see
    the README's "Differences from PyLate").

    Parameters
    ----------
    model
        The :class:`~pylate_clone.models.ColBERT` model to train.
    score_metric
        Scorer, as in :class:`Contrastive` (default ``ColBERTScores()``).
    mini_batch_size
        Rows embedded per forward pass (>= 1). Smaller is leaner and slower.
    score_mini_batch_size
        Queries scored per chunk when computing the loss (default
        ``mini_batch_size``).
    size_average
        Mean (``True``) or sum of the per-query losses.
    gather_across_devices
        Gather documents from every rank, as in :class:`Contrastive`.
    show_progress_bar
        Show tqdm bars over mini-batches.
    temperature
        Scores are divided by ``temperature``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        score_metric: Callable | None = None,
        mini_batch_size: int = 32,
        score_mini_batch_size: int | None = None,
        size_average: bool = True,
        gather_across_devices: bool = False,
        show_progress_bar: bool = False,
        temperature: float = 1.0,
    ) -> None:
        super().__init__(
            model, score_metric if score_metric is not None else ColBERTScores()
        )
        check_int("mini_batch_size", mini_batch_size)
        check_int("score_mini_batch_size", score_mini_batch_size, allow_none=True)
        check_temperature(temperature)
        self.mini_batch_size = mini_batch_size
        self.score_mini_batch_size = (
            score_mini_batch_size
            if score_mini_batch_size is not None
            else mini_batch_size
        )
        self.size_average = size_average
        self.gather_across_devices = gather_across_devices
        self.show_progress_bar = show_progress_bar
        self.temperature = temperature
        # PyLate's attributes. The mixin hands each backward pass its own cache
        # (so a second forward cannot clobber the first's); these stay None
        # unless calculate_loss_and_cache_gradients is called directly.
        self.cache: list[list[torch.Tensor]] | None = None
        self.random_states: list[list[RandContext | None]] | None = None

    def embed_minibatch(
        self,
        sentence_feature: dict[str, torch.Tensor],
        begin: int,
        end: int,
        with_grad: bool,
        copy_random_state: bool,
        random_state: RandContext | None = None,
    ) -> tuple[torch.Tensor, RandContext | None]:
        """Normalised token embeddings ``(end - begin, L, H)`` of rows ``[begin, end)``.

        Parameters
        ----------
        sentence_feature
            Tokenized batch ``(B, L)``.
        begin, end
            Row range.
        with_grad
            Build the autograd graph.
        copy_random_state
            Return a :class:`RandContext` captured before the forward pass.
        random_state
            Replay this RNG state during the forward pass.
        """
        batch_size = sentence_feature["input_ids"].shape[0]
        features = {
            key: value[begin:end]
            if isinstance(value, torch.Tensor)
            and value.dim() > 0
            and value.shape[0] == batch_size
            else value
            for key, value in sentence_feature.items()
        }
        replay = nullcontext() if random_state is None else random_state
        grad_context = nullcontext() if with_grad else torch.no_grad()
        with replay, grad_context:
            state = (
                RandContext(
                    *[v for v in features.values() if isinstance(v, torch.Tensor)]
                )
                if copy_random_state
                else None
            )
            reps = embed(self.model, features)
        return reps, state

    def calculate_loss(
        self,
        reps: list[list[torch.Tensor]],
        masks: list[torch.Tensor],
        with_backward: bool = False,
    ) -> torch.Tensor:
        """Loss from the cached mini-batch embeddings.

        Parameters
        ----------
        reps
            Per feature column, the list of mini-batch embeddings ``(b, L, H)``.
        masks
            Per feature column, the bool mask ``(B, L)`` of the full batch
            (passed in the mixin's ``labels`` slot: a contrastive loss has no
            labels, and the masks belong to this one batch).
        with_backward
            Back-propagate each score chunk into ``reps`` (``.grad`` is filled with
            the gradients of the returned loss).

        Returns
        -------
        torch.Tensor
            Detached scalar loss.
        """
        queries = torch.cat(reps[0])
        documents, documents_mask, offset = stack_documents(
            [torch.cat(column) for column in reps[1:]],
            masks[1:],
            self.gather_across_devices,
        )
        queries_mask = self.queries_mask(masks)
        # Leaves for the per-chunk backward passes; one final backward then routes
        # their gradients to the mini-batch embeddings (and through the gather).
        query_leaf = queries.detach().requires_grad_(with_backward)
        document_leaf = documents.detach().requires_grad_(with_backward)
        batch_size = queries.shape[0]
        labels = contrastive_labels(
            batch_size, documents.shape[1], offset, queries.device
        )
        total = torch.zeros((), device=queries.device)
        chunks = chunked_scores(
            self.score_metric,
            query_leaf,
            document_leaf,
            queries_mask,
            documents_mask,
            self.score_mini_batch_size,
        )
        grad_context = torch.enable_grad() if with_backward else nullcontext()
        for begin, end, scores in tqdm.tqdm(
            chunks,
            desc="Preparing caches",
            disable=not self.show_progress_bar,
            leave=False,
        ):
            with grad_context:
                loss = F.cross_entropy(
                    scores / self.temperature, labels[begin:end], reduction="sum"
                )
                if self.size_average:
                    loss = loss / batch_size
            if with_backward:
                loss.backward()
            total = total + loss.detach()
        if with_backward:
            torch.autograd.backward(
                [queries, documents], [query_leaf.grad, document_leaf.grad]
            )
        return total

    def calculate_loss_and_cache_gradients(
        self, reps: list[list[torch.Tensor]], masks: list[torch.Tensor]
    ) -> torch.Tensor:
        """GradCache step 2: loss value plus cached gradients w.r.t. ``reps``."""
        loss = self.calculate_loss(reps, masks, with_backward=True)
        self.cache = [[rep.grad for rep in column] for column in reps]
        return loss.detach().requires_grad_()

    def loss_from_batch(self, columns: Columns, masks: Masks, labels: Labels) -> Tensor:
        """GradCache loss (its backward runs the second, gradient-carrying pass)."""
        return self.forward_cached(columns, labels=masks)

    def get_config_dict(self) -> dict[str, Any]:
        """Hyper-parameters shown in the model card."""
        return {
            "mini_batch_size": self.mini_batch_size,
            "score_mini_batch_size": self.score_mini_batch_size,
            "size_average": self.size_average,
            "gather_across_devices": self.gather_across_devices,
            "temperature": self.temperature,
        }

    @property
    def citation(self) -> str:
        """BibTeX of the GradCache paper."""
        return """@inproceedings{gao2021scaling,
    title={Scaling Deep Contrastive Learning Batch Size under Memory Limited Setup},
    author={Gao, Luyu and Zhang, Yunyi and Han, Jiawei and Callan, Jamie},
    booktitle={Proceedings of the 6th Workshop on Representation Learning for NLP},
    year={2021}
}"""
