from __future__ import annotations

import tarfile
from collections import Counter

import pytest
from torch.utils.data import DataLoader

from mmpretrain.data.wds.dataset import ShardStream
from mmpretrain.data.wds.skips import SkipSample


def keys_of(raw: dict) -> dict:
    """Cheap decode for stream tests: no image work, just the key (or a requested skip)."""
    if raw.get("txt", b"").startswith(b"skip:"):
        raise SkipSample(raw["txt"].decode()[5:])
    return {"key": raw["__key__"]}


def collate_keys(samples: list[dict]) -> dict:
    return {"key": [s["key"] for s in samples]}


def stream(sources, **kwargs) -> ShardStream:
    kwargs.setdefault("batch_size", 4)
    return ShardStream(sources, keys_of, collate=collate_keys, **kwargs)


def run(dataset: ShardStream, num_workers: int) -> list[dict]:
    return list(DataLoader(dataset, batch_size=None, num_workers=num_workers))


def all_keys(paths) -> set[str]:
    keys = set()
    for p in paths:
        with tarfile.open(p) as archive:
            keys.update(m.name.split(".")[0] for m in archive.getmembers())
    return keys


def exact_ranks(spec: str, world_size: int, num_workers: int, **kwargs) -> list[list[dict]]:
    per_rank = []
    for rank in range(world_size):
        dataset = stream(spec, mode="exact", rank=rank, world_size=world_size, num_workers=num_workers, **kwargs)
        batches = run(dataset, num_workers)
        assert len(batches) == len(dataset)
        per_rank.append(batches)
    return per_rank


def test_exact_two_ranks_two_workers_cover_epoch_exactly_once(make_shards):
    paths = make_shards("x", [12] * 8)
    per_rank = exact_ranks(str(paths[0].parent), 2, 2, shuffle_buffer=5)
    assert [len(batches) for batches in per_rank] == [12, 12]
    for batches in per_rank:
        assert {b["_data_state"]["worker"] for b in batches} == {0, 1}
        assert {b["_data_state"]["rank"] for b in batches} == {per_rank.index(batches)}
    seen = [k for batches in per_rank for b in batches for k in b["key"]]
    assert len(seen) == len(set(seen)) and set(seen) == all_keys(paths)


def test_exact_uneven_shards_give_equal_batch_counts_and_no_repeats(make_shards):
    paths = make_shards("y", [9, 10, 11, 12, 13, 14, 15, 17])
    per_rank = exact_ranks(str(paths[0].parent), 2, 2, shuffle_buffer=5)
    assert len(per_rank[0]) == len(per_rank[1]) > 0
    assert all(len(b["key"]) == 4 for batches in per_rank for b in batches)
    seen = [k for batches in per_rank for b in batches for k in b["key"]]
    assert len(seen) == len(set(seen)) and set(seen) <= all_keys(paths)
    # the dropped tail: < batch_size per worker plus the larger rank's excess
    assert len(all_keys(paths)) - len(seen) < 2 * 2 * 4 + 17


def test_exact_epochs_reorder_and_seed_reproduces(make_shards):
    spec = str(make_shards("e", [8, 8, 8, 8])[0].parent)

    def order(epoch: int, seed: int) -> list[str]:
        dataset = stream(spec, mode="exact", seed=seed, num_workers=0, shuffle_buffer=6)
        dataset.set_epoch(epoch)
        return [k for b in run(dataset, 0) for k in b["key"]]

    first = order(0, seed=1)
    assert order(0, seed=1) == first
    assert order(1, seed=1) != first and sorted(order(1, seed=1)) == sorted(first)
    assert order(0, seed=2) != first


def test_exact_mode_requires_enough_shards_and_data(make_shards):
    spec = str(make_shards("few", [4, 4, 4])[0].parent)
    with pytest.raises(ValueError, match="fewer DataLoader workers"):
        stream(spec, mode="exact", rank=0, world_size=2, num_workers=2)
    with pytest.raises(ValueError, match="not enough for one batch of 16"):
        stream(spec, mode="exact", batch_size=16, num_workers=1)
    with pytest.raises(ValueError, match="only apply to resampled"):
        stream(f"{spec}::{spec}", mode="exact", weights=[1, 1])


def test_exact_rank_with_less_data_sets_the_batch_count(make_shards):
    spec = str(make_shards("u", [40, 4])[0].parent)
    lengths = [len(run(stream(spec, mode="exact", rank=r, world_size=2, num_workers=0), 0)) for r in range(2)]
    assert lengths == [1, 1]


def test_exact_samples_per_epoch_caps_the_epoch(make_shards):
    spec = str(make_shards("cap", [16, 16])[0].parent)
    capped = stream(spec, mode="exact", samples_per_epoch=12, num_workers=2)
    batches = run(capped, 2)
    assert len(batches) == len(capped) == 3
    assert len({k for b in batches for k in b["key"]}) == 12


def test_resampled_respects_mixture_weights(make_shards):
    a = make_shards("a", [40, 40])
    b = make_shards("b", [10, 10, 10])
    dataset = stream([str(a[0].parent), str(b[0].parent)], weights=[0.3, 0.7], batch_size=10,
                     samples_per_epoch=3000, num_workers=0, shuffle_buffer=50)
    batches = run(dataset, 0)
    assert len(batches) == len(dataset) == 300
    keys = [k for batch in batches for k in batch["key"]]
    assert abs(sum(k.startswith("a") for k in keys) / len(keys) - 0.3) < 0.05


def test_resampled_differs_by_worker_and_rank(make_shards):
    spec = str(make_shards("r", [10, 10, 10, 10])[0].parent)
    batches = run(stream(spec, samples_per_epoch=64, num_workers=2, shuffle_buffer=0), 2)
    per_worker = {w: [k for b in batches if b["_data_state"]["worker"] == w for k in b["key"]] for w in (0, 1)}
    assert len(batches) == 16 and per_worker[0] != per_worker[1]
    other_rank = run(stream(spec, samples_per_epoch=64, rank=1, world_size=2, num_workers=0, shuffle_buffer=0), 0)
    assert len(other_rank) == 8


def test_skips_are_counted_and_exact_refill_keeps_batch_count(tmp_path, tar_tools, make_shards):
    samples = [{"__key__": f"k{i}", "txt": "skip:bad_caption" if i in (2, 5) else f"ok {i}"} for i in range(8)]
    tar_tools.write(tmp_path / "s-000000.tar", samples)
    tar_tools.write(tmp_path / "s-000001.tar", [{"__key__": f"m{i}", "txt": "fine"} for i in range(8)])
    spec = str(tmp_path / "s-{000000..000001}.tar")
    whole = run(stream(spec, mode="exact", batch_size=1, num_workers=0, drop_last=False), 0)
    assert len(whole) == 14 and whole[-1]["_data_state"]["skips"] == {"bad_caption": 2}
    filled = run(stream(spec, mode="exact", batch_size=1, num_workers=0), 0)
    keys = [b["key"][0] for b in filled]
    assert len(filled) == 16 and len(set(keys)) == 14
    assert filled[-1]["_data_state"]["skips"] == {"bad_caption": 2, "refill": 2}


def test_decode_exceptions_count_as_decode_error(make_shards):
    spec = str(make_shards("d", [6])[0])

    def flaky(raw):
        if raw["__key__"].endswith("3"):
            raise OSError("cannot identify image file")
        return {"key": raw["__key__"]}

    dataset = ShardStream(spec, flaky, batch_size=1, mode="exact", num_workers=0, drop_last=False,
                          collate=collate_keys, shuffle_buffer=0)
    with pytest.warns(UserWarning, match="decode_error"):
        batches = run(dataset, 0)
    assert len(batches) == 5 and batches[-1]["_data_state"]["skips"] == {"decode_error": 1}


def test_undecodable_data_raises_instead_of_looping(make_shards):
    spec = str(make_shards("z", [5])[0])

    def reject(raw):
        raise SkipSample("missing_image")

    dataset = ShardStream(spec, reject, batch_size=1, mode="exact", num_workers=0)
    with pytest.raises(RuntimeError, match="could be decoded"):
        run(dataset, 0)


def batch_keys(batches: list[dict]) -> Counter:
    return Counter(tuple(b["key"]) for b in batches)


def interrupted_run(spec: str, options: dict, stop_after: int = 5) -> tuple[list[dict], dict, list[dict]]:
    """(the first `stop_after` batches, the stream state then, the batches after resuming from it)."""
    first = stream(spec, **options)
    delivered = []
    for batch in DataLoader(first, batch_size=None, num_workers=2):
        delivered.append(batch)
        first.observe(batch["_data_state"])
        if len(delivered) == stop_after:
            break
    state = first.state_dict()
    resumed = stream(spec, **options)
    resumed.load_state_dict(state)
    return delivered, state, run(resumed, 2)


@pytest.mark.parametrize("mode", ["exact", "resampled"])
def test_resume_neither_repeats_nor_skips(tmp_path, tar_tools, mode):
    # skipped samples shift raw positions against batch counts, so resume must replay raw counts
    for shard, size in enumerate([13, 11, 12, 10]):
        tar_tools.write(tmp_path / f"s-{shard:06d}.tar", [
            {"__key__": f"s{shard}k{j:02d}", "txt": "skip:bad" if (shard + j) % 5 == 0 else "ok"}
            for j in range(size)])
    spec = str(tmp_path / "s-{000000..000003}.tar")
    options = dict(mode=mode, num_workers=2, shuffle_buffer=7, seed=3,
                   samples_per_epoch=96 if mode == "resampled" else None)
    full = run(stream(spec, **options), 2)
    delivered, state, rest = interrupted_run(spec, options)
    assert state["epoch"] == 0 and sum(w["batches"] for w in state["workers"].values()) == 5
    assert sum(w["consumed"] for w in state["workers"].values()) > 20
    assert batch_keys(delivered) + batch_keys(rest) == batch_keys(full)
    assert len(delivered) + len(rest) == len(full)
    # cumulative skip counts carry over: each worker ends with the uninterrupted run's counts
    assert final_skips(rest) == final_skips(full) and sum(final_skips(full)[0].values()) > 0


def final_skips(batches: list[dict]) -> dict[int, dict[str, int]]:
    return {b["_data_state"]["worker"]: b["_data_state"]["skips"] for b in batches}


def test_resume_state_of_another_epoch_or_setup_is_not_applied(make_shards):
    spec = str(make_shards("o", [8, 8])[0].parent)
    first = stream(spec, mode="exact", num_workers=0)
    batches = run(first, 0)
    first.observe(batches[0]["_data_state"])
    state = first.state_dict()
    later = stream(spec, mode="exact", num_workers=0)
    later.load_state_dict(state)
    later.set_epoch(1)
    assert len(run(later, 0)) == 4
    with pytest.raises(ValueError, match="seed: saved 0, now 9"):
        stream(spec, mode="exact", num_workers=0, seed=9).load_state_dict(state)
