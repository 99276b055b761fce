"""A score run's summary: where its time went."""

from __future__ import annotations

from worker.jobs import ScoreReport


def test_a_score_run_says_where_it_waited_and_an_out_of_fold_run_says_nothing_it_did_not_measure():
    report = ScoreReport("v0001", scored=100, seconds=10.0, setup_seconds=0.5, input_wait_seconds=1.0,
                         model_seconds=7.0, push_wait_seconds=1.5)
    assert report.time_shares() == {"setup": 0.05, "records": 0.1, "model": 0.7, "push": 0.15}
    assert report.summary().endswith("; of its 10.0 s it set up 5% (binding, model, engine) and waited for records "
                                     "(read, tokenized) 10%, for the model 70%, for pushes 15%")
    assert "waited" not in ScoreReport("v0001-oof3", scored=100, seconds=10.0).summary()


def test_a_ray_run_also_says_where_its_actors_spent_their_time():
    report = ScoreReport("v0001", scored=100, seconds=10.0, input_wait_seconds=0.5, model_seconds=9.0,
                         actor_shares={"records": 0.25, "model": 0.6})
    assert report.summary().endswith("for the model 90%, for pushes 0% (the Ray actors: in the model 60% of their "
                                     "time, tokenizing 25%)")
