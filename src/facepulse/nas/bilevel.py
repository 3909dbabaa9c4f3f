"""The two DARTS steps of the search, as plain functions on a supernet and its optimisers.

Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019 (Sec. 2.3, Alg. 1):
:func:`weight_step` (weights descend the training loss), :func:`architecture_step`
(alphas descend the validation loss, first order or unrolled second order with the
finite-difference Hessian-vector product of :func:`second_order_alpha_grads`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from facepulse.errors import ConfigError
from facepulse.losses.spectral import as_batch_values
from facepulse.models.normalize import diff_signal, normalize_clip
from facepulse.nas.supernet import Supernet

__all__ = [
    "FD_RADIUS",
    "architecture_step",
    "frozen_buffers",
    "pulse_loss",
    "second_order_alpha_grads",
    "weight_step",
]

Batch = Mapping[str, Any]
LossFn = Callable[[], torch.Tensor]

#: Finite-difference step of the Hessian-vector product, relative to ||dw|| (DARTS: 0.01).
FD_RADIUS = 0.01


def _fps_hr(batch: Batch, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    b = like.shape[0]
    return as_batch_values(batch["fps"], b, like, "fps"), as_batch_values(batch["hr_bpm"], b, like, "hr_bpm")


def pulse_loss(model: nn.Module, batch: Batch, loss_fn: nn.Module, normalize: str = "standardize") -> torch.Tensor:
    """Loss of ``model`` on a batch ``{"clip": (B, 3, T, H, W) 0..255, "ppg": (B, T), "fps",
    "hr_bpm"}``; with ``normalize="diff"`` the target is the PPG's derivative (as training)."""
    pred = model(normalize_clip(batch["clip"], normalize)).float()
    target = batch["ppg"].to(pred)
    if normalize == "diff":
        target = diff_signal(target)
    fps, hr = _fps_hr(batch, pred)
    return loss_fn(pred, target, fps=fps, hr_bpm=hr)


@contextmanager
def frozen_buffers(model: nn.Module) -> Iterator[None]:
    """Restore every buffer (BatchNorm running statistics) on exit."""
    saved = [(b, b.detach().clone()) for b in model.buffers()]
    try:
        yield
    finally:
        with torch.no_grad():
            for b, value in saved:
                b.copy_(value)


def _flat_grads(grads: Sequence[torch.Tensor | None], params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if g is None else g for g, p in zip(grads, params, strict=True)]


def second_order_alpha_grads(
    weights: Sequence[nn.Parameter],
    alphas: Sequence[nn.Parameter],
    train_loss: LossFn,
    val_loss: LossFn,
    xi: float,
    weight_decay: float = 0.0,
    radius: float = FD_RADIUS,
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Gradient of the unrolled validation loss w.r.t. the alphas (DARTS eq. 7-8).

    Liu et al., DARTS, ICLR 2019: ``grad_a L_val(w', a) - xi * H dw`` with
    ``w' = w - xi (grad_w L_train(w, a) + weight_decay w)``, ``dw = grad_w' L_val(w', a)``
    and ``H dw ~ (grad_a L_train(w+, a) - grad_a L_train(w-, a)) / (2 eps)``,
    ``w+- = w +- eps dw``, ``eps = radius / ||dw||`` (DARTS: ``radius = 0.01``).

    The weights are modified in place during the computation and restored bit-exactly;
    no ``.grad`` is written. Returns the alpha gradients and the validation loss at ``w'``.
    """
    weights, alphas = list(weights), list(alphas)
    backup = [w.detach().clone() for w in weights]
    try:
        g_train = _flat_grads(torch.autograd.grad(train_loss(), weights, allow_unused=True), weights)
        with torch.no_grad():
            for w, g in zip(weights, g_train, strict=True):
                w.sub_(xi * (g + weight_decay * w))
        loss_val = val_loss()
        grads = _flat_grads(torch.autograd.grad(loss_val, alphas + weights, allow_unused=True), alphas + weights)
        g_alpha, dw = grads[: len(alphas)], grads[len(alphas) :]
        norm = torch.sqrt(sum((d * d).sum() for d in dw))
        eps = radius / (norm + 1e-12)

        def alpha_grads_at(sign: float) -> list[torch.Tensor]:
            with torch.no_grad():
                for w, w0, d in zip(weights, backup, dw, strict=True):
                    w.copy_(w0 + sign * eps * d)
            return _flat_grads(torch.autograd.grad(train_loss(), alphas, allow_unused=True), alphas)

        g_plus, g_minus = alpha_grads_at(1.0), alpha_grads_at(-1.0)
        out = [ga - xi * (gp - gm) / (2 * eps) for ga, gp, gm in zip(g_alpha, g_plus, g_minus, strict=True)]
        return out, loss_val.detach()
    finally:
        with torch.no_grad():
            for w, w0 in zip(weights, backup, strict=True):
                w.copy_(w0)


def architecture_step(
    model: Supernet,
    alpha_optimizer: torch.optim.Optimizer,
    val_loss: LossFn,
    train_loss: LossFn | None = None,
    *,
    order: str = "first",
    xi: float = 0.0,
    weight_decay: float = 0.0,
) -> torch.Tensor:
    """One DARTS architecture step: alphas descend the validation loss; returns that loss.

    Liu et al., DARTS, ICLR 2019 (Alg. 1, step 1). ``order="first"``: gradient of
    ``val_loss()`` at the current weights; ``"second"``: the unrolled gradient of
    :func:`second_order_alpha_grads` (needs ``train_loss``, ``xi``). Only the alphas get
    a gradient and change; weights and BatchNorm statistics are left as they were.
    """
    alphas = model.arch_parameters()
    alpha_optimizer.zero_grad(set_to_none=True)
    with frozen_buffers(model):
        if order == "first":
            loss = val_loss()
            loss.backward(inputs=alphas)
        elif order == "second":
            if train_loss is None:
                raise ConfigError("search.order=second needs the training loss for the unrolled step")
            grads, loss = second_order_alpha_grads(
                model.weight_parameters(), alphas, train_loss, val_loss, xi=xi, weight_decay=weight_decay
            )
            for a, g in zip(alphas, grads, strict=True):
                a.grad = g
        else:
            raise ConfigError(f"search.order {order!r} unknown; available: first, second")
    alpha_optimizer.step()
    alpha_optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def weight_step(
    model: Supernet,
    optimizer: torch.optim.Optimizer,
    train_loss: LossFn,
    backward: Callable[..., None] | None = None,
    clip: Callable[[], None] | None = None,
) -> torch.Tensor:
    """One weight step on the training loss; returns that loss.

    Liu et al., DARTS, ICLR 2019 (Alg. 1, step 2). Gradients flow only into the weights
    (``backward(loss, inputs=weights)``), so the alphas get no ``.grad`` and keep their
    values. ``backward`` defaults to ``Tensor.backward`` (Lightning passes
    ``manual_backward``); ``clip`` is called between backward and step.
    """
    weights = model.weight_parameters()
    optimizer.zero_grad(set_to_none=True)
    loss = train_loss()
    if backward is None:
        loss.backward(inputs=weights)
    else:
        backward(loss, inputs=weights)
    if clip is not None:
        clip()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach()
