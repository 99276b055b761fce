"""One GPU near its limit: every scoring and training path as a fraction of its ceiling, in one run.

The ceiling of a scoring path is the same forward passes (same model, same T, same length-bucketed
batches) on inputs that were tokenized, padded and placed on the device before the clock started,
with no host synchronisation until the end: what the GPU itself can do at these lengths. Each
path is then timed end to end from text to :class:`~worker.scoring.engine.RecordScore` (tokenizing,
padding, copies, post-processing), after one untimed warm-up pass over the same texts.

Rows: the deterministic pass (head-only MC, k = 0: the model once, T samples of the classifier
head), full MC dropout, fast MC over the last k layers; the configuration the worker used before
(batches of 32, tokenizing in line, blocking copies) as "legacy"; training examples/s of the
current loop and of the legacy loop (tokenizing every batch, blocking copies, unfused AdamW),
each timed on its second epoch. ``--compile`` adds ``torch.compile`` rows (training also with CUDA graphs:
``training.compile = "reduce-overhead"``). The ``ray`` part scores the same
texts with the worker's default configuration on the local engine and on the Ray engine (a local Ray; 1 actor
on a GPU: the overhead of shipping chunks to an actor and the scores back; 2 actors on a CPU, sharing its
cores). Parts run in the order scoring, ray, training, and the results are written after each one: a run cut
short keeps the parts it finished.

    python benchmarks/gpu.py                       # on a CUDA machine, ≈ 3 min on an H100
    python benchmarks/gpu.py --device cpu --records 2000 --train 400   # the same rows on a CPU
    python benchmarks/gpu.py --model DIR           # DIR without weights: random weights (throughput only)
    python benchmarks/gpu.py --device cpu --parts ray --records 2000   # local vs Ray engine (2 actors) on a CPU
    python benchmarks/gpu.py --parts scoring --paths deterministic --tokenizer-sweep 2,4   # the host-bound path,
                                                   # also with 2 and 4 tokenizer processes

Each path's row also says where its thread waited, as shares of its time: for input (windows of records
tokenized and padded: what the prefetch thread did not hide) and in the model (launching the passes and waiting
for their results; on a CPU the passes themselves) — the rest is building each record's results. The deterministic
rows end with two bounds: "host side alone" (the same scorer and texts with a 1-layer, 8-unit
BERT behind the same tokenizer: what tokenizing, padding, copies and per-record results allow on this host) and
"model forward alone" (the model's passes on pre-placed batches: what the device allows).

Texts are the offline movie-review snippets (repeated up to ``--records``); the model is the offline
all-MiniLM-L6-v2 with a fresh 2-label head unless ``--model`` names another. Writes
benchmarks/results/gpu.{json,md}.
"""

from __future__ import annotations

import argparse
import logging
import random
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._shared import write_results
from worker.demo_data import SENTIMENT_LABELS, load_movie_snippets
from worker.logging_setup import configure_logging
from worker.offline_assets import MINILM_MODEL, fetch
from worker.scoring import Scorer, ScoringInput, load_classifier
from worker.scoring.batching import windows
from worker.scoring.device import autocast, pick_device
from worker.scoring.mc import MCPredictor
from worker.training.data import Example
from worker.training.trainer import TrainingSettings, train_classifier, weighted_cross_entropy

logger = logging.getLogger("benchmarks.gpu")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--records", type=int, default=50_000, help="texts scored by each path")
    parser.add_argument("--legacy-records", type=int, default=10_000, help="texts for the (slow) legacy rows")
    parser.add_argument("--samples", type=int, default=20, help="MC-dropout samples T")
    parser.add_argument("--fast-layers", type=int, default=4, help="k of the fast-MC row")
    parser.add_argument("--max-batch-size", type=int, default=1024)
    parser.add_argument("--train", type=int, default=4000, help="training examples per epoch")
    parser.add_argument("--train-batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=64, help="training context (as the precision benchmark)")
    parser.add_argument("--model", type=Path, default=None, help="a model directory (default: offline MiniLM)")
    parser.add_argument("--compile", action="store_true", help="add torch.compile rows")
    parser.add_argument("--sweep", action="store_true", help="add max_batch_size 256 / 4096 rows")
    parser.add_argument("--tokenizer-workers", type=int, default=0, help="tokenizer processes of the new paths")
    parser.add_argument("--paths", default="deterministic,full,fast",
                        help="which scoring paths to time (comma-separated: deterministic, full, fast)")
    parser.add_argument("--tokenizer-sweep", default="",
                        help="extra deterministic rows with this many tokenizer processes each (e.g. 2,4)")
    parser.add_argument("--parts", default="scoring,training,ray", help="which parts to run (comma-separated)")
    parser.add_argument("--ray-actors", default="",
                        help="actors of the Ray rows, comma-separated (default: 1 on a GPU — one model per GPU —, "
                             "2 on a CPU): the first count on the default configuration; with more than one, the "
                             "deterministic path on each count above 1 too, sharing the device (each 1/n GPU): one "
                             "process is bound by its host side (the GIL) there, not by the GPU")
    parser.add_argument("--ray-records", type=int, default=None, help="texts of the Ray rows (default: --records)")
    parser.add_argument("--ray-chunks", default="",
                        help="records per chunk sent to an actor (ray.chunk_records: a number or auto, the "
                             "worker's default), comma-separated: a row of the first actor count for each (default: "
                             "auto). An actor scores its chunks one after the other, so each chunk's fixed costs "
                             "show less in larger chunks")
    return parser.parse_args()


def prepare_model(source: Path | None, work: Path) -> Path:
    """A 2-label sequence classifier directory; a source without weights gets random ones (throughput only)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    source = source or fetch(MINILM_MODEL)
    labels = dict(enumerate(SENTIMENT_LABELS))
    has_weights = any((source / name).exists() for name in ("model.safetensors", "pytorch_model.bin"))
    if has_weights:
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=2, id2label=labels, label2id={v: k for k, v in labels.items()},
            ignore_mismatched_sizes=True)
    else:
        logger.warning("%s has no weights: random weights, throughput figures only", source)
        config = AutoConfig.from_pretrained(source, num_labels=2, id2label=labels,
                                            label2id={v: k for k, v in labels.items()})
        model = AutoModelForSequenceClassification.from_config(config)
    target = work / "model"
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(source).save_pretrained(target)
    return target


def negligible_model(model_dir: Path, work: Path) -> Path:
    """A 1-layer BERT with 8 hidden units behind ``model_dir``'s tokenizer: scored end to end, its rate is what the
    host side (tokenizing, padding, copies, per-record results) allows on this machine whatever the device does —
    the bound the deterministic path meets when its row and this one agree."""
    from transformers import AutoConfig, AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    positions = getattr(AutoConfig.from_pretrained(model_dir), "max_position_embeddings", 512)  # the same max length
    labels = dict(enumerate(SENTIMENT_LABELS))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=8, num_hidden_layers=1, num_attention_heads=1,
                        intermediate_size=8, max_position_embeddings=positions, num_labels=2, id2label=labels,
                        label2id={v: k for k, v in labels.items()})
    target = work / "negligible-model"
    BertForSequenceClassification(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def load_texts(count: int) -> list[str]:
    snippets = [snippet.text for snippet in load_movie_snippets()]
    random.Random(0).shuffle(snippets)
    return [snippets[index % len(snippets)] for index in range(count)]


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None


def time_path(model_dir: Path, texts: list[str], device: torch.device, **scorer_args) -> dict:
    """End to end: texts in, RecordScores out (one warm-up pass first)."""
    scorer = Scorer(load_classifier(model_dir, device=str(device)), progress=False, **scorer_args)
    records = [ScoringInput(str(index), text, SENTIMENT_LABELS[index % 2]) for index, text in enumerate(texts)]
    assert sum(1 for _ in scorer.score(records)) == len(records)
    _reset_peak(device)
    started = time.perf_counter()
    scores = list(scorer.score(records))
    seconds = time.perf_counter() - started
    assert len(scores) == len(records) and not any(score.skipped for score in scores)
    return {"records_per_s": len(records) / seconds, "seconds": seconds, "peak_mib": _peak_mib(device),
            "batch_size": scorer.batch_size, "batch_tokens": scorer.batch_tokens, "scorer": repr(scorer),
            "input_wait_share": scorer.stats.input_wait_seconds / seconds,
            "model_share": scorer.stats.model_seconds / seconds}


def time_ceiling(model_dir: Path, texts: list[str], device: torch.device, *, deterministic_only: bool,
                 batch_size: int, batch_tokens: int | None, compile: bool = False, **predictor_args) -> dict:
    """The same forward passes on pre-placed batches, one synchronisation at the end."""
    classifier = load_classifier(model_dir, device=str(device))
    predictor = MCPredictor(classifier, compile=compile, **predictor_args)
    records = [ScoringInput(str(index), text) for index, text in enumerate(texts)]
    batches = [{key: value.to(device) for key, value in batch.inputs.items()}
               for window in windows(records, classifier.tokenizer, batch_size=batch_size,
                                     max_length=classifier.max_length, batch_tokens=batch_tokens)
               for batch in window.batches]
    model = torch.compile(classifier.model, dynamic=True) if compile and deterministic_only else classifier.model

    def run() -> None:
        with torch.inference_mode():
            for inputs in batches:
                if deterministic_only:
                    with autocast(device, classifier.amp_dtype):
                        model(**inputs)
                else:
                    predictor.launch(inputs)
        _synchronize(device)

    run()
    _reset_peak(device)
    started = time.perf_counter()
    run()
    seconds = time.perf_counter() - started
    return {"records_per_s": len(records) / seconds, "seconds": seconds, "peak_mib": _peak_mib(device)}


def _examples(texts: list[str]) -> list[Example]:
    return [Example(str(index), text, SENTIMENT_LABELS[len(text) % 2]) for index, text in enumerate(texts)]


def time_training(model_dir: Path, texts: list[str], device: torch.device, args, *, compile: bool | str = False,
                  batch_size: int | None = None) -> dict:
    """Examples/s of the worker's training loop, second of two epochs."""
    settings = TrainingSettings(epochs=2, batch_size=batch_size or args.train_batch_size, max_length=args.max_length,
                                device=str(device), compile=compile, learning_rate=5e-5, min_steps=0)
    epochs = []  # min_steps 0: two epochs whatever the batch size (a small --train would otherwise add epochs)
    with tempfile.TemporaryDirectory() as output:
        _reset_peak(device)
        train_classifier(model_dir, _examples(texts), [], SENTIMENT_LABELS, Path(output), settings,
                         on_epoch=epochs.append)
    return {"examples_per_s": len(texts) / epochs[-1].seconds, "first_epoch_s": epochs[0].seconds,
            "peak_mib": _peak_mib(device)}


def time_legacy_training(model_dir: Path, texts: list[str], device: torch.device, args) -> dict:
    """The loop as it was: tokenizing every batch in line, blocking copies, unfused AdamW (second epoch)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
    amp = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    examples = _examples(texts)
    seconds = []
    for epoch in range(2):
        order = random.Random(epoch).sample(examples, len(examples))
        started = time.perf_counter()
        total = torch.zeros((), device=device)
        for start in range(0, len(order), args.train_batch_size):
            batch = order[start:start + args.train_batch_size]
            inputs = tokenizer([e.text for e in batch], truncation=True, max_length=args.max_length, padding=True,
                               return_tensors="pt").to(device)
            targets = torch.tensor([SENTIMENT_LABELS.index(e.label) for e in batch], device=device)
            weights = torch.ones(len(batch), device=device)
            with autocast(device, amp):
                logits = model(**inputs).logits
            loss, per_example = weighted_cross_entropy(logits, targets, weights)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total += per_example.detach().sum()
        float(total)
        seconds.append(time.perf_counter() - started)
    return {"examples_per_s": len(texts) / seconds[-1], "first_epoch_s": seconds[0], "peak_mib": None}


def _guarded(name: str, function, *args, **kwargs) -> dict:
    try:
        result = function(*args, **kwargs)
    except Exception as error:  # a failing row is reported, the others still run
        logger.exception("%s failed", name)
        return {"error": f"{type(error).__name__}: {error}"}
    logger.info("%s: %s", name, {k: v for k, v in result.items() if k != "scorer"})
    return result


def scoring_rows(model_dir: Path, texts: list[str], legacy_texts: list[str], device: torch.device, args) -> dict:
    """{row name: {path: ..., ceiling: ...}} for every scoring configuration."""
    paths = {  # --paths name: (row name, scorer options)
        "deterministic": ("deterministic (k=0)", {"strategy": "partial", "mc_layers": 0}),
        "full": (f"full MC T={args.samples}", {"strategy": "full"}),
        "fast": (f"fast MC k={args.fast_layers}", {"strategy": "partial", "mc_layers": args.fast_layers}),
    }
    chosen = args.paths.split(",")
    unknown = set(chosen) - set(paths)
    if unknown:
        raise SystemExit(f"--paths: unknown {sorted(unknown)}; choose from {', '.join(paths)}")
    configs = dict(paths[key] for key in paths if key in chosen)
    sizes = [args.max_batch_size] + ([256, 4096] if args.sweep else [])
    rows = {}
    for name, config in configs.items():
        for size in sizes:
            label = name if size == args.max_batch_size else f"{name}, max batch {size}"
            path = _guarded(label, time_path, model_dir, texts, device, samples=args.samples, batch_size="auto",
                            max_batch_size=size, tokenizer_workers=args.tokenizer_workers, **config)
            ceiling = _guarded(f"{label} ceiling", time_ceiling, model_dir, texts, device,
                               deterministic_only=False, samples=args.samples,
                               batch_size=path.get("batch_size", size), batch_tokens=path.get("batch_tokens"),
                               **config)
            rows[label] = {"path": path, "ceiling": ceiling}
        if args.compile:
            label = f"{name}, compiled"
            path = _guarded(label, time_path, model_dir, texts, device, samples=args.samples, batch_size="auto",
                            max_batch_size=args.max_batch_size, compile=True, **config)
            ceiling = _guarded(f"{label} ceiling", time_ceiling, model_dir, texts, device, deterministic_only=False,
                               samples=args.samples, batch_size=path.get("batch_size", args.max_batch_size),
                               batch_tokens=path.get("batch_tokens"), compile=True, **config)
            rows[label] = {"path": path, "ceiling": ceiling}
        legacy = _guarded(f"{name}, legacy", time_path, model_dir, legacy_texts, device, samples=args.samples,
                          batch_size=32, pipeline=False, **config)
        rows[f"{name}, legacy (batch 32, in line)"] = {"path": legacy, "ceiling": rows[name]["ceiling"]}
    if "deterministic" in chosen:
        name, config = paths["deterministic"]
        first = rows[name]
        for workers in (int(count) for count in args.tokenizer_sweep.split(",") if count):
            label = f"{name}, {workers} tokenizer processes"
            rows[label] = {"path": _guarded(label, time_path, model_dir, texts, device, samples=args.samples,
                                            batch_size="auto", max_batch_size=args.max_batch_size,
                                            tokenizer_workers=workers, **config),
                           "ceiling": first["ceiling"]}
        host_label = "host side alone (the same pipeline, a negligible model)"
        rows[host_label] = {"path": _guarded(host_label, time_path, negligible_model(model_dir, Path(model_dir).parent),
                                             texts, device, samples=args.samples, batch_size="auto",
                                             max_batch_size=args.max_batch_size, **config),
                            "ceiling": None}
        rows["model forward alone (ceiling of the deterministic pass)"] = {
            "path": _guarded("model forward alone", time_ceiling, model_dir, texts, device, deterministic_only=True,
                             batch_size=first["path"].get("batch_size", args.max_batch_size),
                             batch_tokens=first["path"].get("batch_tokens"), samples=1),
            "ceiling": None,
        }
    return rows


def time_ray(model_dir: Path, texts: list[str], device: torch.device, actors: int, chunk_records: int | str,
             **scorer_args) -> dict:
    """The Ray engine end to end (a local Ray; one warm-up pass first), as :func:`time_path`: ``actors`` actors
    sharing the device (a GPU split evenly; on a CPU the cores split evenly), ``chunk_records`` records a task."""
    import os

    import ray

    from worker.config import RaySettings
    from worker.scoring.distributed import RayScorer

    if not ray.is_initialized():
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
    on_gpu = device.type == "cuda"
    cpus = 1.0 if on_gpu else float(max(1, (os.cpu_count() or 1) // actors))
    settings = RaySettings(actors=actors, gpus_per_actor=1.0 / actors if on_gpu else 0.0, cpus_per_actor=cpus,
                           chunk_records=chunk_records)
    records = [ScoringInput(str(index), text, SENTIMENT_LABELS[index % 2]) for index, text in enumerate(texts)]
    with RayScorer(model_dir, "bench", settings, device="cuda" if on_gpu else "cpu", options=scorer_args) as scorer:
        assert sum(1 for _ in scorer.score(records)) == len(records)
        started = time.perf_counter()
        scores = list(scorer.score(records))
        seconds = time.perf_counter() - started
    assert len(scores) == len(records) and not any(score.skipped for score in scores)
    shares = scorer.actor_shares()
    return {"records_per_s": len(records) / seconds, "seconds": seconds, "actors": actors,
            "cpus_per_actor": cpus, "chunk_records": chunk_records, "last_chunk": scorer.chunk_records,
            "scorer": repr(scorer),
            "model_share": scorer.stats.model_seconds / seconds,  # the driver waiting for the actors
            "actor_input_share": shares.get("records"), "actor_model_share": shares.get("model")}


def ray_rows(model_dir: Path, texts: list[str], device: torch.device, args) -> dict:
    """The worker's default scoring configuration (fast MC, consistent masks, adaptive off so every record gets
    T samples) on the local engine and on the Ray engine, same texts, same device."""
    config = {"samples": args.samples, "batch_size": "auto", "max_batch_size": args.max_batch_size,
              "consistent": True}
    counts = [int(count) for count in args.ray_actors.split(",") if count] or [1 if device.type == "cuda" else 2]
    chunks = [size if size == "auto" else int(size) for size in args.ray_chunks.split(",") if size] or ["auto"]
    rows = {"local engine": _guarded("local engine", time_path, model_dir, texts, device, **config)}
    for chunk in chunks:
        rows[f"Ray engine, {counts[0]} actor(s), chunks of {chunk}"] = _guarded(
            f"ray engine, chunks of {chunk}", time_ray, model_dir, texts, device, counts[0], chunk, **config)
    shared = [count for count in counts if count > 1] if len(counts) > 1 else []
    if shared:  # the host-bound path: do n processes (n GILs) on one GPU come nearer its ceiling?
        deterministic = {**config, "strategy": "partial", "mc_layers": 0}
        rows["local engine, deterministic (k=0)"] = _guarded("local deterministic", time_path, model_dir, texts,
                                                             device, **deterministic)
        where = "sharing the GPU" if device.type == "cuda" else "sharing the cores"
        for count in shared:
            rows[f"Ray engine, deterministic (k=0), {count} actors {where}, chunks of {chunks[0]}"] = _guarded(
                f"ray deterministic {count}", time_ray, model_dir, texts, device, count, chunks[0], **deterministic)
    return rows


def training_rows(model_dir: Path, texts: list[str], device: torch.device, args) -> dict:
    rows = {"legacy loop": _guarded("legacy training", time_legacy_training, model_dir, texts, device, args),
            "current loop": _guarded("training", time_training, model_dir, texts, device, args)}
    if args.compile:
        rows["current loop, compiled"] = _guarded("training compiled", time_training, model_dir, texts, device,
                                                  args, compile=True)
        rows["current loop, CUDA graphs (compile = reduce-overhead)"] = _guarded(
            "training CUDA graphs", time_training, model_dir, texts, device, args, compile="reduce-overhead")
    rows[f"current loop, batch {args.train_batch_size * 4}"] = _guarded(
        "training big batch", time_training, model_dir, texts, device, args, batch_size=args.train_batch_size * 4)
    return rows


def ray_table(rows: dict) -> list[str]:
    if not rows:  # the ray part was not run
        return []
    header = ("| engine (fast MC, consistent masks; deterministic rows as named) | records/s | × local | overhead "
              "| in the model (Ray: waiting for the actors) | actors: waiting for input | actors: in the model |")
    lines = ["", header, "|---|---:|---:|---:|---:|---:|---:|"]
    for name, row in rows.items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error'][:80]} | | | | | |")
            continue
        shares = " | ".join("" if row.get(key) is None else f"{row[key]:.0%}" for key in
                            ("model_share", "actor_input_share", "actor_model_share"))
        baseline = "local engine, deterministic (k=0)" if "deterministic" in name else "local engine"
        local = rows.get(baseline, {}).get("records_per_s")
        ratio = row["records_per_s"] / local if local else None
        overhead = f"{1 - ratio:.1%}" if ratio is not None and name != baseline else ""
        lines.append(f"| {name} | {row['records_per_s']:.0f} | {ratio:.2f} | {overhead} | {shares} |"
                     if ratio is not None else f"| {name} | {row['records_per_s']:.0f} | | | {shares} |")
    return lines


def table(args, device_name: str, scoring: dict, training: dict) -> list[str]:
    def number(value, pattern="{:.0f}"):
        return "–" if value is None else pattern.format(value)

    lines = [(f"GPU benchmark — {device_name}; {args.records} movie snippets (legacy rows {args.legacy_records}), "
              f"T = {args.samples}, max batch {args.max_batch_size}")]
    if scoring:
        lines += ["", ("| scoring path | records/s | ceiling records/s | fraction of ceiling | peak MiB | batch "
                       "| waiting for input | in the model |"), "|---|---:|---:|---:|---:|---|---:|---:|"]
    for name, row in scoring.items():
        path, ceiling = row["path"], row["ceiling"] or {}
        if "error" in path:
            lines.append(f"| {name} | failed: {path['error'][:80]} | | | | | | |")
            continue
        fraction = path["records_per_s"] / ceiling["records_per_s"] if ceiling.get("records_per_s") else None
        batch = f"{path.get('batch_size', '')} rec / {path.get('batch_tokens') or '–'} tok"
        lines.append(f"| {name} | {number(path['records_per_s'])} | {number(ceiling.get('records_per_s'))} "
                     f"| {number(fraction, '{:.2f}')} | {number(path.get('peak_mib'))} | {batch} "
                     f"| {number(path.get('input_wait_share'), '{:.0%}')} "
                     f"| {number(path.get('model_share'), '{:.0%}')} |")
    if not training:
        return lines
    lines += ["", (f"| training ({args.train} examples, {args.max_length} tokens) | examples/s (2nd epoch) "
                   "| × legacy | first epoch s | peak MiB |"), "|---|---:|---:|---:|---:|"]
    legacy = training.get("legacy loop", {}).get("examples_per_s")
    for name, row in training.items():
        if "error" in row:
            lines.append(f"| {name} | failed: {row['error'][:80]} | | | |")
            continue
        ratio = row["examples_per_s"] / legacy if legacy else None
        lines.append(f"| {name} | {number(row['examples_per_s'])} | {number(ratio, '{:.2f}')} "
                     f"| {number(row['first_epoch_s'], '{:.1f}')} | {number(row.get('peak_mib'))} |")
    return lines


def main() -> None:
    configure_logging("INFO")
    args = parse_args()
    device = pick_device(args.device)
    device_name = (torch.cuda.get_device_name(device) if device.type == "cuda"
                   else f"cpu ({torch.get_num_threads()} threads)")
    texts = load_texts(args.records)
    parts = args.parts.split(",")
    results: dict[str, dict] = {"scoring": {}, "training": {}, "ray": {}}
    # The Ray rows before training's: the engine's overhead is a figure of its own, the compiled training rows take
    # the longest; the results are written after each part, so a run cut short (a device run's budget) keeps them.
    runs = {"scoring": lambda: scoring_rows(model_dir, texts, texts[:args.legacy_records], device, args),
            "ray": lambda: ray_rows(model_dir, texts[:args.ray_records] if args.ray_records else texts, device, args),
            "training": lambda: training_rows(model_dir, texts[:args.train], device, args)}
    if unknown := set(parts) - set(runs):
        raise SystemExit(f"--parts: unknown {sorted(unknown)}; choose from {', '.join(runs)}")
    with tempfile.TemporaryDirectory() as work:
        model_dir = prepare_model(args.model, Path(work))
        for part, run in runs.items():
            if part in parts:
                results[part] = run()
                _write(args, device_name, results)


def _write(args: argparse.Namespace, device_name: str, results: dict[str, dict]) -> None:
    """benchmarks/results/gpu.{json,md} of the parts run so far."""
    scoring, training, distributed = results["scoring"], results["training"], results["ray"]
    payload = {"args": {k: str(v) for k, v in vars(args).items()}, "device": device_name, "torch": torch.__version__,
               "scoring": scoring, "training": training, "ray": distributed}
    lines = table(args, device_name, scoring, training) if scoring or training else [f"GPU benchmark — {device_name}"]
    write_results("gpu", payload, lines + ray_table(distributed))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
