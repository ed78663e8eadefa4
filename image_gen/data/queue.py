"""MoCo-style sample queue: per-class FIFO rings of real samples plus one global (unconditional) ring.

Each training step pushes the newest labelled real samples; positives are drawn from the ring of their class,
unconditional negatives from the global ring. Draws are without replacement within one call and use the
caller's ``torch.Generator``, so a run is reproducible and its queue can be saved and restored exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor


class SampleQueue:
    """Per-class rings of ``per_class`` samples and a global ring of ``global_size`` samples.

    Samples are tensors of one fixed shape S (an image [C, H, W], a latent, ...).
    """

    def __init__(
        self, num_classes: int, sample_shape: tuple[int, ...], per_class: int = 128, global_size: int = 1000
    ):
        if num_classes < 1 or per_class < 1 or global_size < 1:
            raise ValueError(
                f"num_classes, per_class and global_size must be >= 1; got {num_classes}, "
                f"{per_class}, {global_size}"
            )
        self.num_classes, self.per_class, self.global_size = num_classes, per_class, global_size
        self.sample_shape = tuple(sample_shape)
        self.class_items = torch.zeros(num_classes, per_class, *self.sample_shape)  # [K, per_class, *S]
        self.class_count = torch.zeros(num_classes, dtype=torch.long)  # filled slots per class
        self.class_head = torch.zeros(num_classes, dtype=torch.long)  # next slot to overwrite
        self.global_items = torch.zeros(global_size, *self.sample_shape)  # [global_size, *S]
        self.global_count = torch.zeros((), dtype=torch.long)
        self.global_head = torch.zeros((), dtype=torch.long)

    def push(self, samples: Tensor, labels: Tensor) -> None:
        """Append samples [n, *S] with labels [n]; the oldest entries of a full ring are overwritten."""
        if tuple(samples.shape[1:]) != self.sample_shape or samples.shape[0] != labels.shape[0]:
            raise ValueError(
                f"push expects samples [n, {', '.join(map(str, self.sample_shape))}] and labels [n]; "
                f"got {list(samples.shape)} and {list(labels.shape)}"
            )
        samples = samples.detach().to(self.class_items.dtype).cpu()
        for sample, label in zip(samples, labels.tolist(), strict=True):
            if not 0 <= label < self.num_classes:
                raise ValueError(f"label {label} outside [0, {self.num_classes})")
            head = int(self.class_head[label])
            self.class_items[label, head] = sample
            self.class_head[label] = (head + 1) % self.per_class
            self.class_count[label] = min(int(self.class_count[label]) + 1, self.per_class)
            self.global_items[int(self.global_head)] = sample
            self.global_head = (self.global_head + 1) % self.global_size
            self.global_count = torch.clamp(self.global_count + 1, max=self.global_size)

    def sample_class(self, labels: Tensor, n: int, generator: torch.Generator) -> Tensor:
        """For each label in [N_c], ``n`` distinct samples of that class: [N_c, n, *S]."""
        out = []
        for label in labels.tolist():
            count = int(self.class_count[label])
            if count < n:
                raise ValueError(
                    f"class {label} holds {count} samples but {n} were requested; push more real "
                    f"samples first (warm the queue) or lower n_pos (per_class={self.per_class})"
                )
            index = torch.randperm(count, generator=generator)[:n]
            out.append(self.class_items[label, index])
        return torch.stack(out)

    def sample_unconditional(self, n: int, generator: torch.Generator) -> Tensor:
        """``n`` distinct samples of any class from the global ring: [n, *S]."""
        count = int(self.global_count)
        if count < n:
            raise ValueError(
                f"the global queue holds {count} samples but {n} were requested; push more real "
                f"samples first or lower n_unc (global_size={self.global_size})"
            )
        return self.global_items[torch.randperm(count, generator=generator)[:n]]

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "class_items": self.class_items,
            "class_count": self.class_count,
            "class_head": self.class_head,
            "global_items": self.global_items,
            "global_count": self.global_count,
            "global_head": self.global_head,
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        for key, value in state.items():
            current = getattr(self, key)
            if current.shape != value.shape:
                raise ValueError(
                    f"queue state '{key}' is {list(value.shape)}, expected {list(current.shape)}"
                )
            setattr(self, key, value.clone())


class DataStream:
    """Endless shuffled stream over a labelled dataset, epoch by epoch, driven by its own generator."""

    def __init__(self, samples: Tensor, labels: Tensor, seed: int):
        self.samples, self.labels = samples, labels
        self.generator = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(len(labels), generator=self.generator)
        self.position = 0

    def next(self, n: int) -> tuple[Tensor, Tensor]:
        """The next ``n`` (sample [n, *S], label [n]) pairs."""
        if self.position + n > len(self.order):
            self.order = torch.randperm(len(self.labels), generator=self.generator)
            self.position = 0
        index = self.order[self.position : self.position + n]
        self.position += n
        return self.samples[index], self.labels[index]

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "order": self.order,
            "position": torch.tensor(self.position),
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.order = state["order"].clone()
        self.position = int(state["position"])
        self.generator.set_state(state["generator"])
