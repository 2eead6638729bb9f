"""training_batches: BatchStream's exact order through a DataLoader, resumable, with and without workers; flips."""

import itertools

import pytest
import torch

from aigckit.config import DataConfig
from aigckit.data import BatchStream, load_dataset, training_batches
from aigckit.data.loader import flip_mask
from aigckit.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DataConfig(name="digits", image_size=8))  # 1,617 images


def take(batches, n):
    return list(itertools.islice(batches, n))


def assert_same(batches, expected):
    assert len(batches) == len(expected)
    for got, want in zip(batches, expected):
        assert got.keys() == want.keys()
        for key in want:
            assert torch.equal(got[key], want[key]), key


@pytest.mark.parametrize(("rank", "world_size", "start"), [(0, 1, 0), (0, 2, 0), (1, 2, 0), (2, 3, 0),
                                                           (0, 1, 95), (1, 2, 45)])
def test_the_loader_reads_batch_streams_batches(digits, rank, world_size, start):
    """Batches start, start + 1, ... as BatchStream gives them, past an epoch's end (1,617 // 16 = 101 batches
    an epoch in one process): a run resumed at `start` continues the same trajectory."""
    stream = BatchStream(digits, 16, seed=3, rank=rank, world_size=world_size)
    expected = [stream.batch_at(k) for k in range(start, start + 60)]
    assert_same(take(training_batches(digits, batch_size=16, seed=3, rank=rank, world_size=world_size,
                                      start=start), 60), expected)


def test_worker_processes_give_the_same_batches(digits):
    stream = BatchStream(digits, 8, seed=1, rank=1, world_size=2)
    batches = training_batches(digits, batch_size=8, seed=1, rank=1, world_size=2, start=97, num_workers=2)
    assert_same(take(batches, 120), [stream.batch_at(k) for k in range(97, 217)])
    flipped = training_batches(digits, batch_size=8, seed=1, rank=1, world_size=2, start=97, flip=True)
    assert_same(take(training_batches(digits, batch_size=8, seed=1, rank=1, world_size=2, start=97, flip=True,
                                      num_workers=2), 30), take(flipped, 30))


def test_flips_depend_on_seed_batch_and_position_only(digits):
    one = take(training_batches(digits, batch_size=16, seed=5, flip=True), 60)
    two = [take(training_batches(digits, batch_size=8, seed=5, rank=r, world_size=2, flip=True), 60)
           for r in range(2)]
    for k in range(60):  # two processes at batch B flip exactly what one process at 2B flips
        assert torch.equal(torch.cat([two[0][k]["images"], two[1][k]["images"]]), one[k]["images"])
    assert_same(take(training_batches(digits, batch_size=16, seed=5, flip=True, start=41), 19), one[41:])
    plain = take(training_batches(digits, batch_size=16, seed=5), 60)
    flipped = 0
    for k in range(60):
        mask = torch.from_numpy(flip_mask(5, k, 16))
        images, unflipped = one[k]["images"], plain[k]["images"]
        assert torch.equal(images[mask], unflipped[mask].flip(-1)) and torch.equal(images[~mask], unflipped[~mask])
        assert torch.equal(one[k]["labels"], plain[k]["labels"])
        flipped += int(mask.sum())
    assert 0.4 < flipped / (60 * 16) < 0.6
    assert (flip_mask(5, 0, 64) != flip_mask(6, 0, 64)).any() and (flip_mask(5, 0, 64) != flip_mask(5, 1, 64)).any()


def test_micro_batches_of_several_processes_read_and_flip_what_one_big_batch_does(digits):
    """2 processes x 3 micro-batches of 4 images read (and flip) what 1 process at 24 reads, step by step,
    across epoch ends: 1,617 // 24 = 67 steps an epoch either way, the incomplete last step dropped."""
    one = take(training_batches(digits, batch_size=24, seed=2, flip=True), 150)
    split = [take(training_batches(digits, batch_size=4, seed=2, rank=r, world_size=2, micro_batches=3,
                                   flip=True), 450) for r in range(2)]
    for step in range(150):  # micro-batch i of the step, then the process: the examples' places in the step
        parts = [split[r][3 * step + i] for i in range(3) for r in range(2)]
        for key in ("images", "labels"):
            assert torch.equal(torch.cat([part[key] for part in parts]), one[step][key]), (step, key)


def test_text_goes_through_the_same_loader():
    text = load_dataset(DataConfig(name="pydoc", block_size=16), "val")
    stream = BatchStream(text, 4, seed=2)
    assert_same(take(training_batches(text, batch_size=4, seed=2, start=10), 5),
                [stream.batch_at(k) for k in range(10, 15)])
    assert_same(take(training_batches(text, batch_size=4, seed=2, start=10, num_workers=1), 5),
                [stream.batch_at(k) for k in range(10, 15)])
    with pytest.raises(DataError, match="set data.flip=false"):
        training_batches(text, batch_size=4, seed=2, flip=True)


def test_too_few_examples_and_bad_settings_are_refused(digits):
    with pytest.raises(DataError, match="lower train.batch_size"):
        training_batches(digits, batch_size=1000, seed=0, world_size=2)  # raised at the call, not at next()
    with pytest.raises(ConfigError, match="num_workers"):
        DataConfig(num_workers=-1)


def test_the_loader_leaves_the_global_random_stream_alone(digits):
    """A DataLoader draws a seed when it starts; from the global generator, a run resumed at another step would
    draw its training noise from another stream than the unbroken run."""
    state = torch.get_rng_state()
    take(training_batches(digits, batch_size=8, seed=0, flip=True), 3)
    assert torch.equal(torch.get_rng_state(), state)
