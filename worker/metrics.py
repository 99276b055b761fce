"""Prometheus metrics of the running worker (served on ``/metrics``)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class WorkerMetrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self.records_scored = Counter("argilla_worker_records_scored", "Records scored and pushed", registry=r)
        self.records_per_second = Gauge("argilla_worker_scoring_records_per_second",
                                        "Scoring throughput of the last scoring job", registry=r)
        self.scoring_wait_share = Gauge("argilla_worker_scoring_wait_share", "Share of the last scoring job's time "
                                        "spent waiting for a stage (records: read and tokenized; model; push): the "
                                        "largest bounds its speed", ["stage"], registry=r)
        self.push_failures = Counter("argilla_worker_push_failures", "Records whose push failed", registry=r)
        self.records_failing = Gauge("argilla_worker_records_failing",
                                     "Records whose last push failed, kept to be pushed again", registry=r)
        self.queue_depth = Gauge("argilla_worker_queue_depth", "Pending work items", registry=r)
        self.corrections_pending = Gauge("argilla_worker_corrections_pending",
                                         "Submitted responses since the last training", registry=r)
        self.argilla_up = Gauge("argilla_worker_argilla_up", "1 when the last call to Argilla succeeded", registry=r)
        self.model_info = Gauge("argilla_worker_model_info", "The current model version", ["version"], registry=r)
        self.model_ece = Gauge("argilla_worker_model_ece", "Validation ECE of the current model", ["kind"],
                               registry=r)
        self.model_macro_f1 = Gauge("argilla_worker_model_macro_f1", "Validation macro-F1 of the current model",
                                    registry=r)
        self.test_accuracy = Gauge("argilla_worker_model_test_accuracy", "Accuracy of the current model on the "
                                   "reviewed records of the test set (records drawn at random; argilla-worker "
                                   "test-set)", registry=r)
        self.stability_kappa = Gauge("argilla_worker_prediction_stability_kappa",
                                     "Cohen's kappa between the current and the previous model on the stop set",
                                     registry=r)
        self.stop_signal = Gauge("argilla_worker_stop_signal", "1 when more annotation is unlikely to change the "
                                 "model (mean kappa of the last promotions at the threshold)", registry=r)
        self.annotator_quality = Gauge("argilla_worker_annotator_quality", "Agreement of an annotator with the "
                                       "others and with the model (team lead only)", ["annotator"], registry=r)
        self.annotator_weight = Gauge("argilla_worker_annotator_weight", "Weight of an annotator's vote in the "
                                      "consensus", ["annotator"], registry=r)
        self.annotator_labels = Gauge("argilla_worker_annotator_labels", "Submitted labels of an annotator",
                                      ["annotator"], registry=r)
        self.job_success = Gauge("argilla_worker_job_last_success", "1 if the job's last run succeeded", ["job"],
                                 registry=r)
        self.job_timestamp = Gauge("argilla_worker_job_last_run_timestamp_seconds", "When the job last ran",
                                   ["job"], registry=r)
        self.job_seconds = Histogram("argilla_worker_job_seconds", "Job durations", ["job"], registry=r,
                                     buckets=(0.1, 1, 5, 30, 120, 600, 3600))
        self.webhooks_rejected = Counter("argilla_worker_webhooks_rejected",
                                         "Webhook deliveries rejected for a bad signature", registry=r)
        self.webhooks_accepted = Counter("argilla_worker_webhooks_accepted", "Verified webhook deliveries",
                                         registry=r)

    def job_result(self, job: str, success: bool, seconds: float) -> None:
        self.job_success.labels(job).set(1 if success else 0)
        self.job_timestamp.labels(job).set(time.time())
        self.job_seconds.labels(job).observe(seconds)

    def set_annotators(self, annotators: dict) -> None:
        """``annotators``: user id → :class:`worker.crowd.AnnotatorStats` (labelled by username when known)."""
        for gauge in (self.annotator_quality, self.annotator_weight, self.annotator_labels):
            gauge.clear()
        for user, stats in annotators.items():
            name = stats.username or user
            if stats.quality is not None:
                self.annotator_quality.labels(name).set(stats.quality)
            self.annotator_weight.labels(name).set(stats.weight)
            self.annotator_labels.labels(name).set(stats.labels)

    def set_model(self, version: str, validation: dict, stability: dict | None = None,
                  test: dict | None = None) -> None:
        self.model_info.clear()
        self.model_info.labels(version).set(1)
        for kind, key in (("deterministic", "ece_deterministic"), ("mc", "ece_mc")):
            if validation.get(key) is not None:
                self.model_ece.labels(kind).set(validation[key])
        if validation.get("macro_f1") is not None:
            self.model_macro_f1.set(validation["macro_f1"])
        if test and test.get("accuracy") is not None:
            self.test_accuracy.set(test["accuracy"])
        stability = stability or {}
        if stability.get("kappa") is not None:
            self.stability_kappa.set(stability["kappa"])
        self.stop_signal.set(1 if stability.get("stop_signal") else 0)
