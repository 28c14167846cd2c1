"""Train the tiny policy and keep each process's final weights, to compare data-parallel ranks with solo runs.

Run under torchrun (``python -m tests.learning.ddp_ranks DATA OUT STEPS [KEY=VALUE ...]``) every rank writes
``OUT/rank<r>.pt``, the weights it ended with (rank 0 alone writes the run itself). `solo` trains in this process
on one rank's shard: the batches that rank draws, from the same initial weights.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from s2kit.learning import trainer
from tests.learning.tiny import registered, run


@contextmanager
def kept_models(shard: int | None = None) -> Iterator[list[torch.nn.Module]]:
    """Inside, every policy the trainer builds is appended to the yielded list; with ``shard``, the sampler draws
    the batches that rank ``shard`` of a data-parallel run draws (its generator's seed)."""
    models: list[torch.nn.Module] = []
    policy_of, sampler = trainer._policy, trainer.FrameSampler

    def keeping_policy(executor: Any) -> Any:
        cls = policy_of(executor)

        class Kept(cls):  # type: ignore[valid-type, misc]
            def __init__(self, config: Any) -> None:
                super().__init__(config)
                models.append(self)

        Kept.__name__ = Kept.__qualname__ = cls.__name__
        return Kept

    def shard_sampler(*args: Any, seed: int, **kw: Any) -> Any:
        config = args[1]
        return sampler(*args, seed=seed if shard is None else config.seed * 1000 + shard, **kw)

    trainer._policy, trainer.FrameSampler = keeping_policy, shard_sampler  # type: ignore[assignment]
    try:
        yield models
    finally:
        trainer._policy, trainer.FrameSampler = policy_of, sampler  # type: ignore[assignment]


def solo(data: Path, out: Path, steps: int, shard: int, *options: str) -> dict[str, torch.Tensor]:
    """The weights of a one-process run that draws rank ``shard``'s batches (``options`` should halve the batch)."""
    with kept_models(shard) as models:
        run(data, out, steps, *options)
    return {k: v.detach().clone() for k, v in models[-1].state_dict().items()}


if __name__ == "__main__":
    registered()
    data, out, steps, *options = sys.argv[1:]
    with kept_models() as models:
        run(Path(data), Path(out), int(steps), *options, log=lambda m: print(m, file=sys.stderr))
    torch.save(models[-1].state_dict(), Path(out) / f"rank{os.environ['RANK']}.pt")
