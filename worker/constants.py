"""Numeric constants shared by scoring, training, calibration and the jobs (one home each)."""

from __future__ import annotations

import math

# Smallest probability used inside a log: keeps losses finite for a confidently wrong model.
PROBABILITY_FLOOR = 1e-12
LOG_FLOOR = math.log(PROBABILITY_FLOOR)

# Validation records below which a model's expected calibration error is too noisy to judge (10 confidence bins
# of a few records each: one record moves the ECE by several points); `status` says so beside the figure.
ECE_MIN_RECORDS = 100
