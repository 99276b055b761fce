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
