"""The OpenVINO encoder's micro-batch shapes (retrieval/encoders/openvino.py), without the
model: a batch's rows are padded on to a few counts so the CPU plugin meets few shapes."""

from __future__ import annotations

import numpy as np

from retrieval.encoders.openvino import ROW_BUCKETS, OpenVINOEncoder


def _batch(rows: int, width: int = 16) -> tuple[dict[str, np.ndarray], np.ndarray]:
    ids = np.arange(rows * width, dtype=np.int64).reshape(rows, width)
    mask = np.ones((rows, width), dtype=np.int64)
    mask[:, -3:] = 0
    return {"input_ids": ids, "attention_mask": mask}, mask


def test_a_batch_is_padded_on_to_the_next_row_bucket_with_copies_of_its_first_row() -> None:
    feeds, mask = _batch(5)
    padded, pmask = OpenVINOEncoder._rows_padded(feeds, mask)
    assert padded["input_ids"].shape == (6, 16) and pmask.shape == (6, 16)
    assert np.array_equal(padded["input_ids"][:5], feeds["input_ids"])  # rows kept in order
    assert np.array_equal(padded["input_ids"][5], feeds["input_ids"][0])
    assert np.array_equal(pmask[5], mask[0])


def test_a_batch_already_on_a_bucket_or_beyond_the_largest_is_left_alone() -> None:
    for rows in (2, 8, ROW_BUCKETS[-1] + 1):
        feeds, mask = _batch(rows)
        padded, pmask = OpenVINOEncoder._rows_padded(feeds, mask)
        assert padded["input_ids"].shape[0] == rows and pmask.shape[0] == rows


def test_micro_batches_of_2_to_32_questions_meet_few_row_counts() -> None:
    counts = {OpenVINOEncoder._rows_padded(*_batch(n))[1].shape[0] for n in range(2, 33)}
    assert counts == {2, 3, 4, 6, 8, 12, 16, 24, 32}
