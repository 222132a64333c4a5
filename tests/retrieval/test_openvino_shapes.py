"""The OpenVINO encoder's micro-batch shapes and its pooling in the graph
(retrieval/encoders/openvino.py), without the model: a batch's rows are padded on to a few
counts so the CPU plugin meets few shapes; the pooling added to a (tiny, made-up)
transformer graph gives what sentence-transformers' pooling gives."""

from __future__ import annotations

import numpy as np

from retrieval.encoders.openvino import ROW_BUCKETS, OpenVINOEncoder, pooled


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


def _token_states_graph() -> object:
    """A stand-in transformer: token ``t`` of a row gets the state ``id * [1, 2, 3]``."""
    import openvino as ov
    import openvino.opset13 as ops

    ids = ops.parameter([-1, -1], np.int64, name="input_ids")
    mask = ops.parameter([-1, -1], np.int64, name="attention_mask")
    states = ops.multiply(
        ops.unsqueeze(ops.convert(ids, "f32"), ops.constant(np.int64(2))),
        ops.constant(np.array([1.0, 2.0, 3.0], dtype=np.float32)),
    )
    return ov.Model([states], [ids, mask], "token-states")


def _pooled_run(pooling: str, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    import openvino as ov

    model = ov.Core().compile_model(pooled(_token_states_graph(), pooling), "CPU")
    out = model.create_infer_request().infer({"input_ids": ids, "attention_mask": mask})
    return np.asarray(out[0])


def test_mean_pooling_in_the_graph_averages_the_unmasked_token_states() -> None:
    ids = np.array([[2, 4, 9, 9], [1, 3, 5, 7]], dtype=np.int64)
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], dtype=np.int64)
    got = _pooled_run("mean", ids, mask)
    assert got.shape == (2, 3)  # one vector a text
    assert np.allclose(got, [[3.0, 6.0, 9.0], [4.0, 8.0, 12.0]])  # padding (9s) left out


def test_cls_pooling_in_the_graph_takes_the_first_token_state() -> None:
    ids = np.array([[2, 4, 9], [5, 3, 1]], dtype=np.int64)
    mask = np.array([[1, 1, 0], [1, 1, 1]], dtype=np.int64)
    assert np.allclose(_pooled_run("cls", ids, mask), [[2.0, 4.0, 6.0], [5.0, 10.0, 15.0]])


def test_usem3_windows_stay_within_their_text_and_padding_points_at_the_zero_row() -> None:
    from retrieval.encoders.use_openvino import _window

    lens = np.array([3, 2], dtype=np.int64)  # tokens 0-2 are one text, 3-4 the next
    got = _window(lens, tokens=8)  # padded on to 8 tokens: the zero row is row 8
    assert got.shape == (8, 5)  # two tokens before, two after
    assert got[0].tolist() == [8, 8, 0, 1, 2]
    assert got[2].tolist() == [0, 1, 2, 8, 8]  # the next text's tokens are not neighbours
    assert got[3].tolist() == [8, 8, 3, 4, 8]
    assert (got[5:] == 8).all()  # padding tokens see only the zero row
