"""Frame-budget batches for one or many ranks: every item exactly once per epoch, deterministic per (seed, epoch),
the same global batch whatever the number of ranks.

An epoch's batches are `frame_budget_batches` of the item lengths with seed `seed + epoch` (similar lengths
together, at most `max_frames` latent frames per batch counting padding, order shuffled). An optimizer step
consumes M = world x accumulate micro-batches, micro-batch a of rank r being the epoch's batch
`step_in_epoch * M + a * world + r`. When the epoch's batch count is not a multiple of M, the batches with the
most items are split in two (still within the budget) until it is, so no item is dropped or repeated; an epoch
with fewer items than M cannot be spread and is an error.

Every micro-batch has a global index G = step * M + a * world + r (its order among all micro-batches of the run,
the same for 1 rank accumulating M micro-batches as for M ranks with one each): the trainer seeds everything
the micro-batch draws (prompt split, noise levels, noise, dropout) from (seed, G), so a run is the same
computation for any split of M into ranks and accumulation steps, up to the order of floating-point sums.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from flashspeech.training.data import frame_budget_batches


def spread(batches: list[list[int]], groups: int) -> list[list[int]]:
    """`batches` with the largest split in two until their count is a multiple of `groups` (items kept, in
    order); ValueError when there are too few items to make a multiple."""
    out = [list(b) for b in batches]
    while len(out) % groups:
        largest = max(range(len(out)), key=lambda i: (len(out[i]), -i))
        batch = out[largest]
        if len(batch) < 2:
            items = sum(len(b) for b in out)
            raise ValueError(f"{items} items cannot fill {groups} micro-batches per step (world x accumulate)")
        half = len(batch) // 2
        out[largest : largest + 1] = [batch[:half], batch[half:]]
    return out


@dataclass
class FrameBudgetSampler:
    """Which items micro-batch `a` of rank `rank` trains on at optimizer step `step` (module docstring)."""

    lengths: Sequence[int]
    max_frames: int
    seed: int = 0
    world: int = 1
    accumulate: int = 1
    _epochs: dict[int, list[list[int]]] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.world < 1 or self.accumulate < 1:
            raise ValueError(f"world and accumulate must be >= 1, got {self.world}, {self.accumulate}")
        self.steps_per_epoch = len(self.epoch(0)) // self.per_step

    @property
    def per_step(self) -> int:
        """Micro-batches per optimizer step, over all ranks."""
        return self.world * self.accumulate

    def epoch(self, epoch: int) -> list[list[int]]:
        """The epoch's micro-batches in consumption order (cached: the last epoch asked for)."""
        if epoch not in self._epochs:
            batches = frame_budget_batches(self.lengths, self.max_frames, self.seed + epoch)
            self._epochs = {epoch: spread(batches, self.per_step)}
        return self._epochs[epoch]

    def global_index(self, step: int, rank: int, micro: int) -> int:
        """The micro-batch's order among all micro-batches of the run (what its random draws are seeded by)."""
        return step * self.per_step + micro * self.world + rank

    def indices(self, step: int, rank: int = 0, micro: int = 0) -> list[int]:
        """Item indices of micro-batch `micro` of `rank` at optimizer step `step`."""
        if not (0 <= rank < self.world and 0 <= micro < self.accumulate):
            raise ValueError(f"rank {rank} / micro-batch {micro} outside world {self.world} x {self.accumulate}")
        epoch, within = divmod(step, self.steps_per_epoch)
        return self.epoch(epoch)[within * self.per_step + micro * self.world + rank]
