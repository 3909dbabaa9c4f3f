"""FIFO queue of normalised spectra from earlier batches: extra negatives for the triplet loss.

He et al., "Momentum Contrast for Unsupervised Visual Representation Learning", CVPR 2020
(MoCo: a queue of earlier keys as negatives), applied to the frequency contrast of
Gideon & Stent, ICCV 2021: the anchor's spectra are pushed away from the spectra of
other clips seen recently, on top of its own frequency-shifted negative.

All spectra of one bank share one frequency grid (same view length, FFT length and
frame rate): training clips are resampled to ``data.fps``, so this holds in practice;
:meth:`MemoryBank.push` raises InputError otherwise. Each entry keeps the code of its video
(:func:`facepulse.contrastive.objectives.video_codes`, -1 = unknown), so that the loss can
leave out entries of a clip's own video: they carry the same pulse (false negatives).
"""

from __future__ import annotations

import torch
from torch import nn

from facepulse.errors import ConfigError, InputError


class MemoryBank(nn.Module):
    """A fixed-size FIFO queue of (F,) spectra, filled by :meth:`push`, read by :meth:`spectra`.

    Parameters
    ----------
    size : K, the number of spectra kept (the oldest are overwritten first).

    The queue lives in non-persistent buffers: it follows the module's device but is
    not in the ``state_dict`` (its size is only known after the first push); a training
    module saves it with :meth:`state` / :meth:`load_state` in its checkpoints, so a
    resumed run continues with the same negatives.
    """

    def __init__(self, size: int) -> None:
        super().__init__()
        if size < 1:
            raise ConfigError(f"contrastive memory_bank size must be >= 1, got {size}")
        self.size = int(size)
        self.register_buffer("queue", torch.zeros(0), persistent=False)
        self.register_buffer("fps", torch.zeros(0), persistent=False)
        self.register_buffer("codes", torch.zeros(0, dtype=torch.long), persistent=False)
        self.ptr = 0
        self.count = 0

    def __len__(self) -> int:
        return self.count

    @torch.no_grad()
    def push(self, spectra: torch.Tensor, fps: float | torch.Tensor, codes: torch.Tensor | None = None) -> None:
        """Enqueue (M, F) spectra (detached) taken at frame rate ``fps`` (scalar or (M,) equal
        values), with the (M,) long codes of their videos (None: unknown, -1)."""
        if spectra.ndim != 2:
            raise InputError(f"memory bank: expected spectra (M, F), got shape {tuple(spectra.shape)}")
        rate = torch.as_tensor(fps, dtype=torch.float64).reshape(-1)
        if rate.numel() > 1 and bool((rate != rate[0]).any()):
            raise InputError("memory bank: spectra of one batch come from different frame rates (set data.fps)")
        rate = rate[:1].to(self.fps.device)
        if self.queue.numel() == 0:
            self.queue = torch.zeros(self.size, spectra.shape[1], dtype=spectra.dtype, device=spectra.device)
            self.fps = rate.to(self.queue.device)
            self.codes = torch.full((self.size,), -1, dtype=torch.long, device=spectra.device)
        if spectra.shape[1] != self.queue.shape[1]:
            have, hold = spectra.shape[1], self.queue.shape[1]
            raise InputError(f"memory bank: spectra have {have} bins, the queue holds {hold}")
        if not torch.allclose(rate.to(self.fps), self.fps):
            new, old = float(rate[0]), float(self.fps[0])
            raise InputError(f"memory bank: frame rate {new:g} differs from the queue's {old:g}")
        if codes is None:
            codes = torch.full((spectra.shape[0],), -1, dtype=torch.long)
        if codes.shape != (spectra.shape[0],):
            raise InputError(f"memory bank: expected one video code per spectrum ({spectra.shape[0]}), "
                             f"got {tuple(codes.shape)}")
        spectra = spectra.detach()[-self.size :].to(self.queue)
        codes = codes[-self.size :].to(self.codes)
        m = spectra.shape[0]
        idx = (self.ptr + torch.arange(m, device=self.queue.device)) % self.size
        self.queue[idx] = spectra
        self.codes[idx] = codes
        self.ptr = (self.ptr + m) % self.size
        self.count = min(self.size, self.count + m)

    def spectra(self) -> torch.Tensor:
        """(count, F) copy of the queued spectra (in no particular order); (0, F) or (0,) when empty.

        A copy, so that pushing the batch's spectra after the loss does not change a
        tensor the loss's backward pass still needs.
        """
        return self.queue[: self.count].clone()

    def video_codes(self) -> torch.Tensor:
        """(count,) long video codes of :meth:`spectra`'s rows (same order; -1 = unknown)."""
        return self.codes[: self.count].clone()

    def reset(self) -> None:
        """Empty the queue (e.g. between runs)."""
        self.ptr = 0
        self.count = 0

    def state(self) -> dict[str, object]:
        """The whole queue as tensors and ints (for a checkpoint; see :meth:`load_state`)."""
        return {
            "size": self.size,
            "queue": self.queue.detach().cpu().clone(),
            "fps": self.fps.detach().cpu().clone(),
            "codes": self.codes.detach().cpu().clone(),
            "ptr": int(self.ptr),
            "count": int(self.count),
        }

    def load_state(self, state: dict[str, object]) -> None:
        """Restore a queue saved by :meth:`state` (InputError if its size differs)."""
        if int(state["size"]) != self.size:
            raise InputError(f"memory bank: the checkpoint's queue holds {int(state['size'])} spectra, "
                             f"contrastive.memory_bank is {self.size}")
        device = self.queue.device
        self.queue = torch.as_tensor(state["queue"]).to(device).clone()
        self.fps = torch.as_tensor(state["fps"]).to(device).clone()
        codes = state.get("codes")  # checkpoints from before video codes: unknown videos
        self.codes = (
            torch.as_tensor(codes).to(device).clone() if codes is not None
            else torch.full((self.queue.shape[0],), -1, dtype=torch.long, device=device)
        )
        self.ptr = int(state["ptr"])
        self.count = int(state["count"])
