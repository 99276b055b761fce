"""Scoring: model loading, batched streaming inference, MC-dropout uncertainty, per-example loss."""

from worker.scoring.batching import ScoringInput
from worker.scoring.engine import RecordScore, Scorer, ScoringStats
from worker.scoring.mc import MCPredictor
from worker.scoring.model import Classifier, ModelHead, check_head_fits, check_label_set, load_classifier, read_head

__all__ = ["Classifier", "MCPredictor", "ModelHead", "RecordScore", "Scorer", "ScoringInput", "ScoringStats",
           "check_head_fits", "check_label_set", "load_classifier", "read_head"]
