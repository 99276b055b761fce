"""Training sequence classifiers on corrected labels: data, loop, evaluation, K-fold, calibration."""

from worker.training.finetune import fine_tune
from worker.training.trainer import TrainingSettings, train_classifier

__all__ = ["TrainingSettings", "fine_tune", "train_classifier"]
