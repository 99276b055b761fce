"""What finishing a stopped full score run costs, with and without its checkpoint (worker.full_pass).

A full run (every record, after a promotion) is stopped at a share ``--stopped-at`` of the dataset — a restart, or
the runner pausing it for an annotator's answers — and a second run finishes it. Side by side in one run, on the
local Argilla stack, each finishing the same share of the same dataset with a model of the same size:

  (a) before: the second run reads every record again (the ones already scored are found up to date, passed over)
  (b) now: the second run goes on from the checkpoint, reading only the records after the last one pushed

Both score the same records; (a) − (b) is the re-reading the checkpoint saves, per record already done. The model
is the tests' tiny BERT, so that the reading is not hidden under a CPU's model time (on a GPU the MiniLM scores
thousands of records a second, and the reading is what a restarted run waits for).

    python benchmarks/full_pass_resume.py                       # 4,000 records, stopped at 90 %
    python benchmarks/full_pass_resume.py --records 10000       # logging 10,000 takes a few minutes
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import write_results
from tests.tiny_models import save_tiny_classifier
from worker.config import load_settings
from worker.demo_data import SENTIMENT_LABELS as LABELS
from worker.jobs import Services, score_job
from worker.local_argilla.settings import LocalArgillaSettings
from worker.local_argilla.stack import LocalArgilla
from worker.logging_setup import configure_logging
from worker.records import LabelledText
from worker.training.register import register_model

logger = logging.getLogger("benchmarks.full_pass_resume")


def _services(stack: LocalArgillaSettings, records: int, work: Path) -> Services:
    """A fresh dataset of ``records`` records (the versions a registry names start at v0001 again: a dataset a
    previous run scored would be up to date), a fresh state and registry."""
    import argilla as rg

    name = f"bench-full-pass-{records}"
    client = rg.Argilla(api_url=stack.api_url, api_key=stack.api_key.get_secret_value())
    old = client.datasets(name, workspace=stack.workspace)
    if old is not None:
        old.delete()
    settings = load_settings(
        argilla={"api_url": stack.api_url, "dataset": name, "workspace": stack.workspace},
        scoring={"samples": 2, "device": "cpu", "push_batch": 200},
        registry={"path": str(work / "registry")}, state_dir=str(work / "state"))
    services = Services(settings)
    services.gateway.ensure_dataset(LABELS)
    logger.info("logging %d records", records)
    services.gateway.log_labelled_texts(LabelledText(f"b{i}", f"benchmark text number {i}: " + "words " * (i % 30),
                                                     LABELS[i % 2]) for i in range(records))
    return services


def _stopped_run(services: Services, model_dir: Path, stop_after: int) -> None:
    """A new model promoted, then a full run paused once batches of ``stop_after`` records were handed to the
    pusher (each is pushed before the run ends)."""
    version = register_model(str(model_dir), services.registry, services.labels()).version
    services.registry.promote(version)
    batches = 0

    def pause() -> bool:  # asked after each batch
        nonlocal batches
        batches += 1
        return batches * services.settings.scoring.push_batch >= stop_after

    report = score_job(services, full=True, pause=pause)
    assert report.paused, report.summary()


def _finishing_run(services: Services) -> dict:
    started = time.perf_counter()
    report = score_job(services, full=True)
    assert not report.stopped, report.summary()
    return {"seconds": time.perf_counter() - started, "read": report.considered, "scored": report.scored,
            "resumed_after": report.resumed_after}


def measure(stack: LocalArgillaSettings, records: int, stopped_at: float, work: Path) -> dict:
    services = _services(stack, records, work)
    stop_after = int(records * stopped_at)
    _stopped_run(services, save_tiny_classifier(work / "model-a", seed=1), stop_after)
    services.full_passes.clear(services.gateway.dataset_key)  # (a) the run before checkpoints: nothing to go on from
    before = _finishing_run(services)
    _stopped_run(services, save_tiny_classifier(work / "model-b", seed=2), stop_after)
    now = _finishing_run(services)  # (b)
    assert now["resumed_after"] > 0
    saved, done = before["seconds"] - now["seconds"], before["read"] - now["read"]
    return {"records": records, "stopped_at": done / records, "before": before, "now": now, "saved_s": saved,
            "saved_ms_per_done_record": 1000 * saved / max(1, done), "ratio": before["seconds"] / now["seconds"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--stopped-at", type=float, default=0.9, help="share of the records the first run pushed")
    args = parser.parse_args()
    configure_logging("INFO")

    stack = LocalArgillaSettings()
    LocalArgilla(stack).up()
    os.environ.setdefault("ARGILLA_API_KEY", stack.api_key.get_secret_value())
    work = Path(tempfile.mkdtemp(prefix="full-pass-resume-"))
    try:
        row = measure(stack, args.records, args.stopped_at, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    before, now = row["before"], row["now"]
    per_record, share = row["saved_ms_per_done_record"], row["stopped_at"]
    title = (f"Finishing a full score run stopped at {share:.0%} of {args.records} records (local "
             "Argilla, tiny BERT, 2 MC samples)")
    saving = (f"(a)/(b) {row['ratio']:.2f}×; the re-reading saved: {row['saved_s']:.1f} s, {per_record:.2f} ms per "
              f"record already done (at 10^6 records stopped at {share:.0%}: "
              f"{per_record * 1e6 * share / 60000:.0f} min of reading before the first new score)")
    lines = [title, "", "| second run | records read | scored | seconds |", "|---|---:|---:|---:|",
             f"| (a) reads every record again | {before['read']} | {before['scored']} | {before['seconds']:.1f} |",
             f"| (b) goes on from the checkpoint | {now['read']} | {now['scored']} | {now['seconds']:.1f} |", "",
             saving]
    write_results("full_pass_resume", row, lines)


if __name__ == "__main__":
    main()
