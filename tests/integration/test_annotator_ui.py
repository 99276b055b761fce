"""The annotator's view in a real headless Chromium against the real local Argilla UI.

Signs in, opens the dataset, sorts by `loss` descending, sees the highest-loss record first with
the model's suggestion, submits a corrected label, and checks the next pull reports it.
A screenshot is saved under test-artifacts/.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import pytest

from worker.demo_data import LabelledText
from worker.gateway import ArgillaGateway
from worker.records import Prediction

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-quic"]
TEXTS = {"r0": "a wonderful, moving film", "r1": "a film about nothing at all", "r2": "a tedious, lifeless mess",
         "r3": "funny, smart and charming"}


@pytest.fixture(scope="module")
def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("Debian's chromium is not installed (scripts/test.sh installs it)")
        pytest.skip("Debian's chromium is not installed")
    return path


@pytest.fixture
def browser_page(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


@pytest.fixture
def scored_dataset(local_argilla, stack_settings, dataset_name):
    """Four records; the model finds r2's original label ('positive') least plausible."""
    gateway = ArgillaGateway(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value(),
                             dataset_name=dataset_name, workspace=stack_settings.workspace)
    gateway.ensure_dataset(("negative", "positive"))
    labels = {"r0": "positive", "r1": "negative", "r2": "positive", "r3": "positive"}
    gateway.log_labelled_texts(LabelledText(rid, TEXTS[rid], labels[rid]) for rid in TEXTS)
    losses = {"r0": 0.1, "r1": 0.7, "r2": 3.2, "r3": 0.2}
    predicted = {"r0": "positive", "r1": "negative", "r2": "negative", "r3": "positive"}
    report = gateway.push(
        [Prediction(rid, predicted[rid], 0.9, "model-v1", {"loss": losses[rid], "model_version": "model-v1"})
         for rid in TEXTS],
        current={record.record_id: record for record in gateway.pull()},
    )
    assert report.ok
    return gateway


def test_annotator_sorts_by_loss_sees_the_worst_record_with_its_suggestion_and_corrects_it(
        browser_page, scored_dataset, stack_settings):
    page = browser_page
    page.goto(f"{stack_settings.api_url}/sign-in")
    page.get_by_label("Username").fill(stack_settings.username)
    page.get_by_label("Password").fill(stack_settings.password.get_secret_value())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "sign-in" not in url)

    page.goto(f"{stack_settings.api_url}/dataset/{scored_dataset.dataset_id()}/annotation-mode")
    page.locator("button.filter-button__button", has_text="Sort").click()
    page.locator("li[title='loss'] button").click()
    page.wait_for_url(lambda url: "sort=metadata.loss.asc" in url)
    page.locator("button.sort-selector-item__direction").click()
    page.wait_for_url(lambda url: "sort=metadata.loss.desc" in url)
    page.keyboard.press("Escape")

    page.get_by_text(TEXTS["r2"]).wait_for()
    for other in ("r0", "r1", "r3"):
        assert not page.get_by_text(TEXTS[other]).is_visible()
    suggested = page.locator("label", has_text="negative").first
    assert "0.9" in suggested.inner_text()  # the model's suggestion and its score are shown
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "annotator-sorted-by-loss.png"))

    page.get_by_role("button", name="Submit").click()
    page.get_by_text(TEXTS["r2"]).wait_for(state="hidden")

    corrections, ties = scored_dataset.corrections()
    assert ties == []
    assert [(c.record_id, c.label, c.original_label, c.is_correction) for c in corrections] == [
        ("r2", "negative", "positive", True)]


def _sign_in(page, settings) -> None:
    page.goto(f"{settings.api_url}/sign-in")
    page.get_by_label("Username").fill(settings.username)
    page.get_by_label("Password").fill(settings.password.get_secret_value())
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "sign-in" not in url)


def _sort_descending(page, settings, dataset_id, prop: str) -> None:
    page.goto(f"{settings.api_url}/dataset/{dataset_id}/annotation-mode")
    page.locator("button.filter-button__button", has_text="Sort").click()
    page.locator(f"li[title='{prop}'] button").click()
    page.wait_for_url(lambda url: f"sort=metadata.{prop}.asc" in url)
    page.locator("button.sort-selector-item__direction").click()
    page.wait_for_url(lambda url: f"sort=metadata.{prop}.desc" in url)
    page.keyboard.press("Escape")


def test_the_annotator_sees_the_label_under_review_with_the_models_doubt_and_unlabelled_records_get_the_model(
        browser_page, local_argilla, stack_settings, dataset_name):
    """scoring.suggestion = auto, through the worker's own policy code: r2's label 'positive' is under review
    and the model gives it 0.04; r4 came without a label, so the model's 'negative' is pre-selected."""
    from worker.binding import PRESERVED_AGENT
    from worker.jobs import reference_agent
    from worker.predictions import prediction_from_score
    from worker.scoring.engine import RecordScore

    gateway = ArgillaGateway(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value(),
                             dataset_name=dataset_name, workspace=stack_settings.workspace)
    gateway.ensure_dataset(("negative", "positive"))
    texts = {**TEXTS, "r4": "two hours I will never get back"}
    labels = {"r0": "positive", "r1": "negative", "r2": "positive", "r3": "positive", "r4": None}
    gateway.log_labelled_texts(LabelledText(rid, texts[rid], labels[rid]) for rid in texts)
    p_negative = {"r0": 0.1, "r1": 0.5, "r2": 0.96, "r3": 0.2, "r4": 0.87}
    pulled = {record.record_id: record for record in gateway.pull()}
    predictions = []
    for rid, negative in p_negative.items():
        probabilities = {"negative": negative, "positive": 1 - negative}
        predicted = max(probabilities, key=probabilities.get)
        reference = labels[rid]
        score = RecordScore(rid, predicted, probabilities[predicted], probabilities, predicted,
                            bald=0.3 if rid == "r4" else 0.01,
                            entropy=0.5, margin=abs(2 * negative - 1), reference_label=reference,
                            loss=-math.log(probabilities[reference]) if reference else None,
                            expected_loss=-math.log(probabilities[reference]) if reference else None,
                            disagreement=predicted != reference if reference else None)
        predictions.append(prediction_from_score(score, "v0001", policy="auto",
                                                 reference_agent=reference_agent(pulled[rid], gateway.binding)))
    assert gateway.push(predictions, current=pulled).ok
    assert pulled["r2"].metadata[PRESERVED_AGENT] == "original"

    page = browser_page
    _sign_in(page, stack_settings)
    dataset_id = gateway.dataset_id()
    _sort_descending(page, stack_settings, dataset_id, "loss")
    page.get_by_text(texts["r2"]).wait_for()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "annotator-label-under-review.png"))
    # the label under review, and how little the model believes it (Argilla 2.8 shows one decimal: 0.04 → 0.0)
    assert page.locator("label", has_text="positive").first.inner_text().split()[-1] == "0.0"
    page.get_by_role("button", name="Submit").click()  # pre-selected: Submit confirms the label under review
    page.get_by_text(texts["r2"]).wait_for(state="hidden")

    _sort_descending(page, stack_settings, dataset_id, "bald")
    page.get_by_text(texts["r4"]).wait_for()
    page.screenshot(path=str(ARTIFACTS / "annotator-unlabelled-model-suggestion.png"))
    assert page.locator("label", has_text="negative").first.inner_text().split()[-1] == "0.9"  # 0.87
    page.get_by_role("button", name="Submit").click()
    page.get_by_text(texts["r4"]).wait_for(state="hidden")

    corrections, _ = gateway.corrections()
    assert sorted((c.record_id, c.label) for c in corrections) == [("r2", "positive"), ("r4", "negative")]


def test_two_questions_each_with_its_workers_suggestion_sort_by_their_own_loss(
        browser_page, local_argilla, stack_settings, dataset_name):
    """A dataset with two label questions made with the SDK, one gateway per question (what two workers write):
    sorted by `sentiment_loss` the sentiment worker's worst record comes first, by `length_loss` the length
    worker's; each question shows its own worker's suggestion."""
    import argilla as rg

    client = rg.Argilla(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value())
    rg.Dataset(name=dataset_name, workspace=stack_settings.workspace, client=client, settings=rg.Settings(
        fields=[rg.TextField(name="review")],
        questions=[rg.LabelQuestion(name="sentiment", labels=["negative", "positive"]),
                   rg.LabelQuestion(name="length", labels=["short", "long"])])).create().records.log(
        [rg.Record(id=rid, fields={"review": text}) for rid, text in TEXTS.items()])
    worst = {"sentiment": "r2", "length": "r1"}
    suggested = {"sentiment": "negative", "length": "long"}
    for question in ("sentiment", "length"):
        gateway = ArgillaGateway(api_url=stack_settings.api_url, api_key=stack_settings.api_key.get_secret_value(),
                                 dataset_name=dataset_name, workspace=stack_settings.workspace, question=question)
        gateway.prepare()
        report = gateway.push([Prediction(rid, suggested[question], 0.9 if rid == worst[question] else 0.6,
                                          f"{question}-v1", {"loss": 3.0 if rid == worst[question] else 0.1,
                                                             "model_version": f"{question}-v1"})
                               for rid in TEXTS], current={r.record_id: r for r in gateway.pull()})
        assert report.ok
    page = browser_page
    _sign_in(page, stack_settings)
    for question in ("sentiment", "length"):
        _sort_descending(page, stack_settings, gateway.dataset_id(), f"{question}_loss")
        page.get_by_text(TEXTS[worst[question]]).wait_for()
        assert not any(page.get_by_text(TEXTS[rid]).is_visible() for rid in TEXTS if rid != worst[question])
        # both questions carry their own worker's suggestion and score on the record shown first
        assert "0.9" in page.locator("label", has_text=suggested[question]).first.inner_text()
        other = "length" if question == "sentiment" else "sentiment"
        assert "0.6" in page.locator("label", has_text=suggested[other]).first.inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"annotator-two-questions-by-{question}-loss.png"))
