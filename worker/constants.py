"""Numeric constants shared by scoring, training, calibration and the jobs (one home each)."""

from __future__ import annotations

import math

# Smallest probability used inside a log: keeps losses finite for a confidently wrong model.
PROBABILITY_FLOOR = 1e-12
LOG_FLOOR = math.log(PROBABILITY_FLOOR)

# Validation records below which a model's expected calibration error is too noisy to judge (10 confidence bins
# of a few records each: one record moves the ECE by several points); `status` says so beside the figure.
ECE_MIN_RECORDS = 100

# training.head_learning_rate = "auto": a new single-label head of at least AUTO_HEAD_MIN_LABELS labels trains at
# AUTO_HEAD_LEARNING_RATE (the encoder at training.learning_rate). At 5e-5 a head of many labels stays near its random
# start for the first trainings: Reuters R8 / 20 Newsgroups / R52 (8, 20, 52 labels) macro-F1 0.53 / 0.38 / 0.04 ->
# 0.94 / 0.69 / 0.47; with 2 or 5 labels 1e-2 did a little worse (benchmarks/long_tail.py, benchmarks/RESULTS.md).
# A new label-set head (one sigmoid per label) trains at AUTO_HEAD_LEARNING_RATE whatever its labels: 3 rater
# sentiments from 500 / 1,000 reviews, test macro-F1 0.53 / 0.58 -> 0.58 / 0.60, per-label accuracy 0.58 / 0.58 ->
# 0.72 / 0.77, labels ticked a record 2.0 -> 1.6 / 1.5 where they carry 1.14, the loss sort's AUROC on a fifth of the
# sets made wrong 0.81 -> 0.88; from 150 reviews no rate beat ticking every label (benchmarks/label_set_head.py).
AUTO_HEAD_LEARNING_RATE = 1e-2
AUTO_HEAD_MIN_LABELS = 8
# Below AUTO_HEAD_MIN_LABELS the skew decides at 6 labels, so a new head of AUTO_HEAD_SKEW_MIN_LABELS or more labels
# whose rarest label holds under AUTO_HEAD_SKEW of an even share trains at AUTO_HEAD_LEARNING_RATE too: 6 skewed
# Reuters labels (rarest 0.2 of an even share) macro-F1 0.73 / 0.69 -> 0.92 / 0.91, 6 newsgroups cut to 45 % ... 4 %
# (rarest 0.24) 0.83 / 0.82 -> 0.91 / 0.83 (loss AUROC 0.94 -> 0.99 / 0.98), while 6 balanced newsgroups did not gain
# (0.94 / 0.92 -> 0.90 / 0.92). Fewer labels keep one rate: 5 skewed newsgroups worse (0.92 / 0.93 -> 0.91 / 0.91),
# 4 skewed Reuters labels one seed better, one worse; 2 skewed ones (crude vs earn, spam) worse.
AUTO_HEAD_SKEW = 0.5
AUTO_HEAD_SKEW_MIN_LABELS = 6

# training.compile = "reduce-overhead" records one CUDA graph per batch shape: batches are padded to a multiple of this
# many tokens, so a max_length of 128 gives at most 8 lengths (the padding costs GPU time a launch-bound step has).
CUDA_GRAPH_PAD_MULTIPLE = 16

# Training texts cut by training.max_length: a warning (not an info line) from this share of the training set on.
TRUNCATED_WARN_SHARE = 0.1

# the metadata property marking a test set's records, and the size `argilla-worker test-set` draws (see worker.test_set)
TEST_SET_PROPERTY = "test_set_rank"
DEFAULT_TEST_SET_SIZE = 200  # a 95 % interval of about ± 0.07 on accuracy once all are reviewed
# ... and at most this share of the records nobody has reviewed (rounded up): a small dataset keeps most of its records
# for the model to suggest on and learn from (an 80/20 split; `test-set --size` takes what it is told)
DEFAULT_TEST_SET_SHARE = 0.2
# training.align_first_token (worker/training/pooling.py): the alignment's settings, and what it was measured to give
ALIGN_EPOCHS = 3
ALIGN_LEARNING_RATE = 1e-4
ALIGNMENT_MEASURED = ("movie snippets, accuracy on 1,000 unseen: from 50 reviews 0.613 -> 0.627 (2 of 3 seeds), 200: "
                      "0.719 -> 0.754 (3 of 3); BBC sections from 50: 0.926 -> 0.923 (1 of 2)")
