"""How `fit` cuts an epoch into batches for one process and for N data-parallel ranks."""

from __future__ import annotations

import torch

from maas.pipeline.training.fit import iterate_batches, steps_per_epoch


def test_shards_are_equal_disjoint_and_cover_the_epoch() -> None:
    n, batch, world = 1000, 100, 3
    shards = [
        list(
            iterate_batches(
                n, batch, torch.Generator().manual_seed(7), torch.device("cpu"), r, world
            )
        )
        for r in range(world)
    ]
    steps = steps_per_epoch(n, batch, world)
    assert [len(s) for s in shards] == [steps] * world  # same step count: no hanging all-reduce
    for step in range(steps):
        assert len({len(s[step]) for s in shards}) == 1
    assert all(len(s[0]) == 34 for s in shards)  # global batch 100 -> 102 = 3 x 34
    everything = torch.cat([torch.cat(s) for s in shards])
    order = torch.randperm(n, generator=torch.Generator().manual_seed(7))
    assert sorted(everything.tolist()) == sorted(order[: n - n % world].tolist())


def test_one_process_batches_are_unchanged() -> None:
    order = torch.randperm(1000, generator=torch.Generator().manual_seed(3))
    batches = list(iterate_batches(1000, 64, torch.Generator().manual_seed(3), torch.device("cpu")))
    assert [b.tolist() for b in batches] == [b.tolist() for b in torch.split(order, 64)]
    assert steps_per_epoch(1000, 64) == len(batches) == 16
