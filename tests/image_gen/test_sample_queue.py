"""Sample queue: per-class FIFO rings, global ring, draws without replacement, exact state round trip."""

import pytest
import torch

from image_gen.data.queue import DataStream, SampleQueue


def values(n, start=0):
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1)  # sample shape (1,)


def test_per_class_ring_keeps_the_newest_entries():
    queue = SampleQueue(num_classes=2, sample_shape=(1,), per_class=3, global_size=4)
    queue.push(values(5), torch.zeros(5, dtype=torch.long))  # 0..4 into class 0: keeps 2, 3, 4
    queue.push(values(1, start=100), torch.ones(1, dtype=torch.long))
    draw = queue.sample_class(torch.tensor([0]), 3, torch.Generator().manual_seed(0))
    assert sorted(draw.flatten().tolist()) == [2.0, 3.0, 4.0]
    assert queue.class_count.tolist() == [3, 1]
    assert sorted(queue.sample_unconditional(4, torch.Generator()).flatten().tolist()) == [
        2.0,
        3.0,
        4.0,
        100.0,
    ]


def test_draws_are_without_replacement_and_class_pure():
    queue = SampleQueue(num_classes=3, sample_shape=(1,), per_class=16, global_size=32)
    labels = torch.arange(30) % 3
    queue.push(labels.float().view(-1, 1) * 1000 + torch.arange(30).view(-1, 1), labels)
    draw = queue.sample_class(torch.tensor([2, 0]), 10, torch.Generator().manual_seed(1))  # [2, 10, 1]
    assert draw.shape == (2, 10, 1)
    assert draw[0].div(1000).floor().eq(2).all() and draw[1].div(1000).floor().eq(0).all()
    assert len(set(draw[0].flatten().tolist())) == 10  # all distinct


def test_empty_class_error_says_what_to_do():
    queue = SampleQueue(num_classes=2, sample_shape=(1,), per_class=4, global_size=4)
    queue.push(values(2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="class 1 holds 0 samples.*push more real samples"):
        queue.sample_class(torch.tensor([1]), 1, torch.Generator())
    with pytest.raises(ValueError, match="global queue holds 2"):
        queue.sample_unconditional(3, torch.Generator())


def test_same_seed_same_draws_and_state_round_trip():
    queue = SampleQueue(num_classes=2, sample_shape=(1,), per_class=8, global_size=8)
    queue.push(values(10), torch.arange(10) % 2)
    a = queue.sample_class(torch.tensor([0, 1]), 4, torch.Generator().manual_seed(5))
    copy = SampleQueue(num_classes=2, sample_shape=(1,), per_class=8, global_size=8)
    copy.load_state_dict(queue.state_dict())
    b = copy.sample_class(torch.tensor([0, 1]), 4, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b)


def test_stream_resumes_exactly():
    stream = DataStream(values(7), torch.zeros(7, dtype=torch.long), seed=3)
    stream.next(5)
    state = {k: v.clone() for k, v in stream.state_dict().items()}
    expected = [stream.next(3)[0] for _ in range(3)]  # crosses an epoch boundary
    resumed = DataStream(values(7), torch.zeros(7, dtype=torch.long), seed=99)
    resumed.load_state_dict(state)
    for want in expected:
        torch.testing.assert_close(resumed.next(3)[0], want)
