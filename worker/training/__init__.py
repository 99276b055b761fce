"""Fine-tuning sequence classifiers on labelled records."""

from worker.training.finetune import fine_tune

__all__ = ["fine_tune"]
