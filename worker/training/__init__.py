"""Training sequence classifiers on corrected labels: data, loop, evaluation, K-fold, calibration.

The package itself imports nothing heavy: ``worker.training.register``'s label-map parsing (used by ``ingest``) must
not pull torch, transformers and baal into a command that never trains. Import the loop from its module
(``worker.training.finetune.fine_tune``, ``worker.training.trainer.train_classifier``).
"""
