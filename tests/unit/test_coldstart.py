"""TypiClust's parts on hand-made points: typicality, the round-robin over clusters, the embeddings."""

from __future__ import annotations

import numpy as np

from worker.coldstart import embed, typical_ranking, typicality


def _blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Three well-separated 2-D blobs of 30, 20 and 10 points; labels [60]."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    sizes = [30, 20, 10]
    points = np.concatenate([centre + rng.normal(size=(size, 2)) for centre, size in zip(centres, sizes, strict=True)])
    return points, np.repeat(np.arange(3), sizes)


def test_the_centre_of_a_blob_is_more_typical_than_its_edge():
    points = np.array([[0.0, 0.0], [0.1, 0.0], [-0.1, 0.0], [0.0, 0.1], [0.0, -0.1], [3.0, 3.0]])
    scores = typicality(points, neighbours=3)
    assert scores.argmax() == 0 and scores.argmin() == 5


def test_the_first_batch_covers_every_cluster_with_its_most_typical_point_largest_first():
    points, blob = _blobs()
    order = typical_ranking(points, clusters=3, neighbours=5)

    assert sorted(order.tolist()) == list(range(60))  # every record ranked once
    assert blob[order[:3]].tolist() == [0, 1, 2]  # one per cluster, largest cluster first
    for rank, index in enumerate(order[:3]):
        members = np.flatnonzero(blob == blob[index])
        assert index == members[typicality(points[members], 5).argmax()], rank
    assert set(blob[order[3:6]].tolist()) == {0, 1, 2}  # then the second most typical of each


def test_more_clusters_than_points_and_a_single_point_are_fine():
    assert typical_ranking(np.zeros((1, 4)), clusters=50).tolist() == [0]
    assert sorted(typical_ranking(np.eye(4), clusters=50).tolist()) == [0, 1, 2, 3]


def test_embeddings_are_masked_means_in_input_order(tiny_model_dir):
    texts = ["a wonderful film", "dull", "a wonderful film"]
    vectors = embed(texts, str(tiny_model_dir), batch_size=2, device="cpu")
    assert vectors.shape[0] == 3 and np.isfinite(vectors).all()
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-5)  # padding does not change a text's vector
    assert not np.allclose(vectors[0], vectors[1])


def test_a_point_far_from_every_blob_has_the_highest_outlier_score():
    from worker.coldstart import neighbour_distance

    points, _ = _blobs()
    stray = np.vstack([points, [[40.0, 40.0]], [[10.0, 10.0]]])  # two strays: far out, between the blobs
    distance = neighbour_distance(stray, 5)
    assert distance.shape == (62,) and distance.argmax() == 60 and distance[61] > distance[:60].max()
    assert neighbour_distance(np.zeros((1, 2)), 5).tolist() == [0.0]


def test_outlier_scores_judge_the_direction_not_the_length_of_a_vector():
    """Long texts have short mean-pooled vectors: on raw vectors two unrelated long texts near the origin look
    alike; on unit vectors only the direction counts."""
    from worker.coldstart import neighbour_distance, outlier_scores

    rng = np.random.default_rng(0)
    typical = np.array([1.0, 0.0, 0.0]) + rng.normal(scale=0.05, size=(30, 3))  # one topic, length ≈ 1
    short = np.array([[0.0, 0.002, 0.0], [0.0, 0.0, 0.002], [0.0, -0.002, 0.0]])  # three other topics, tiny norms
    points = np.vstack([typical, short])
    assert neighbour_distance(points, 2)[30:].max() < neighbour_distance(points, 2)[:30].min()  # raw: "typical"
    scores = outlier_scores(points, 2)
    assert scores[30:].min() > scores[:30].max() and scores.max() <= 2.0


def test_ranks_from_the_datasets_own_vectors_name_each_record_by_its_id():
    from worker.coldstart import OUTLIER_PROPERTY, RANK_PROPERTY, ColdStartSettings, vector_ranks

    rng = np.random.default_rng(0)
    sizes = [12, 8, 5]
    points = np.vstack([*(10 * np.eye(3)[axis] + rng.normal(scale=0.5, size=(size, 3))
                          for axis, size in enumerate(sizes)), [[-10.0, -10.0, -10.0]]])  # three regions, a stray
    region = [*np.repeat(["x", "y", "z"], sizes), "stray"]
    ids = [f"{name}{index}" for index, name in enumerate(region)]
    ranks = vector_ranks(ids, points, ColdStartSettings(clusters=4, neighbours=3))

    assert sorted(values[RANK_PROPERTY] for values in ranks.values()) == [float(r) for r in range(1, len(ids) + 1)]
    first = sorted(ranks, key=lambda record_id: ranks[record_id][RANK_PROPERTY])[:4]
    assert [record_id.rstrip("0123456789") for record_id in first] == ["x", "y", "z", "stray"]  # largest first
    assert max(ranks, key=lambda record_id: ranks[record_id][OUTLIER_PROPERTY]) == "stray25"
    assert vector_ranks([], np.zeros((0, 2), np.float32), ColdStartSettings()) == {}


def test_records_without_a_usable_vector_are_left_out_and_named_in_the_log(caplog):
    from worker.jobs import _with_vector
    from worker.records import PulledRecord

    def record(record_id: str, vector) -> PulledRecord:
        return PulledRecord(server_id=record_id, record_id=record_id, text="t", metadata={}, suggestion=None,
                            responses=(), updated_at=None,
                            vector=None if vector is None else np.asarray(vector, np.float32))

    pool = [record("a", [1.0, 2.0]), record("b", None), record("c", [float("nan"), 1.0]), record("d", [0.0, 0.0])]
    assert [kept.record_id for kept in _with_vector(pool, "emb")] == ["a", "d"]
    assert "1 records have no vector 'emb' and get no rank, e.g. b" in caplog.text
    assert "1 records' vector 'emb' holds NaN or infinity: no rank, e.g. c" in caplog.text


def test_a_pulled_record_carries_the_vector_the_pull_named():
    from worker.binding import DatasetBinding
    from worker.gateway.client import _pulled_record

    binding = DatasetBinding(fields=("body",), question="intent", labels=("billing", "bug"), question_id="q1")
    item = {"id": "0b0e4b5a-0000-0000-0000-000000000002", "external_id": "t1", "fields": {"body": "charged twice"},
            "metadata": {}, "vectors": {"theirs": [0.5, -1.0, 2.0]}}
    record = _pulled_record(item, binding, "theirs")
    assert record.vector is not None and record.vector.dtype == np.float32
    assert record.vector.tolist() == [0.5, -1.0, 2.0]
    assert _pulled_record(item, binding).vector is None  # not asked for
    assert _pulled_record({**item, "vectors": {}}, binding, "theirs").vector is None  # the record has none


def test_a_stop_ends_the_embedding_after_its_batch(tiny_model_dir):
    """A SIGTERM while a cold start embeds 50,000 records (minutes on a CPU): it ends after the batch under way."""
    import threading

    import pytest

    from worker.errors import Interrupted

    stop = threading.Event()
    stop.set()
    with pytest.raises(Interrupted, match=r"while embedding the records \(2 of 5\): nothing ranked"):
        embed(["a", "b", "c", "d", "e"], str(tiny_model_dir), batch_size=2, device="cpu", stop=stop)
