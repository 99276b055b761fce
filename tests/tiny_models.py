"""Tiny real transformers classifiers built in-process (no download): a 2-layer BERT and a
WordPiece tokenizer trained on the test sentences."""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

CORPUS = [
    "a wonderful , moving film with a great cast",
    "dull and lifeless , the plot never takes off",
    "the best movie of the year , funny and smart",
    "a tedious mess that wastes its actors",
    "charming performances and a clever script",
    "boring , predictable and far too long",
    "an instant classic that will make you laugh and cry",
    "i want those two hours of my life back",
]
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def build_tokenizer(max_length: int = 32) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.train_from_iterator(CORPUS * 4, trainers.WordPieceTrainer(vocab_size=200, special_tokens=SPECIAL_TOKENS))
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, model_max_length=max_length, unk_token="[UNK]", pad_token="[PAD]",
        cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]",
    )


def save_tiny_classifier(
    directory: Path,
    *,
    labels: tuple[str, ...] = ("negative", "positive"),
    layers: int = 2,
    hidden_dropout: float = 0.1,
    attention_dropout: float = 0.1,
    seed: int = 0,
) -> Path:
    """Write a randomly initialised tiny BERT classifier and its tokenizer to ``directory``."""
    import torch

    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, hidden_dropout_prob=hidden_dropout,
        attention_probs_dropout_prob=attention_dropout, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={label: index for index, label in enumerate(labels)},
    )
    model = BertForSequenceClassification(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


def save_tiny_encoder(directory: Path) -> Path:
    """Write a tiny BERT encoder without a classification head (a base model, as published for fine-tuning)."""
    from transformers import BertModel

    with_head = save_tiny_classifier(directory / "with-head")
    encoder: BertModel = BertForSequenceClassification.from_pretrained(with_head).bert
    encoder.save_pretrained(directory)
    # the classifier's own tokenizer: another build_tokenizer() may number the words otherwise (its WordPiece
    # training is not deterministic: 196 or 197 tokens), and a word past the model's vocabulary fails its embedding
    PreTrainedTokenizerFast.from_pretrained(with_head).save_pretrained(directory)
    return directory


def save_tiny_sentence_encoder(directory: Path, *, pooling: str = "mean") -> Path:
    """A tiny BERT encoder with the files sentence-transformers writes beside one (``modules.json``, its Pooling
    module's config): mean pooling, or ``pooling = "cls"``."""
    import json

    save_tiny_encoder(directory)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    (directory / "modules.json").write_text(json.dumps(modules))
    (directory / "1_Pooling").mkdir()
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": pooling == "cls",
         "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": False}))
    return directory


def save_tiny_decoder_classifier(directory: Path, *, labels: tuple[str, ...] = ("negative", "positive"),
                                 seed: int = 0, llama: bool = False) -> Path:
    """A randomly initialised tiny GPT-2 classifier whose byte-level BPE tokenizer has no padding token (as
    GPT-2's and Llama's do not): the shape of a decoder model a team may bring. ``llama``: a Llama-style one
    instead (Llama, Qwen2, Mistral …: no dropout module anywhere, its head named ``score``)."""
    import torch
    from tokenizers import decoders
    from transformers import GPT2Config, GPT2ForSequenceClassification, LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(seed)
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.train_from_iterator(CORPUS * 4, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<|endoftext|>",
                                   bos_token="<|endoftext|>", model_max_length=64)
    eos = fast.convert_tokens_to_ids("<|endoftext|>")
    names = {"num_labels": len(labels), "bos_token_id": eos, "eos_token_id": eos, "id2label": dict(enumerate(labels)),
             "label2id": {label: index for index, label in enumerate(labels)}}
    if llama:
        model = LlamaForSequenceClassification(LlamaConfig(
            vocab_size=len(fast), max_position_embeddings=64, hidden_size=32, intermediate_size=64,
            num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, **names))
    else:
        model = GPT2ForSequenceClassification(GPT2Config(vocab_size=len(fast), n_positions=64, n_embd=32, n_layer=2,
                                                         n_head=2, **names))
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    fast.save_pretrained(directory)
    return directory


# The encoder architectures teams fine-tune classifiers from, each as a tiny randomly initialised model with the
# WordPiece tokenizer above: (config class, model class, the architecture's own config arguments).
ARCHITECTURES: dict[str, tuple[str, str, dict]] = {
    "bert": ("BertConfig", "BertForSequenceClassification", {}),
    "roberta": ("RobertaConfig", "RobertaForSequenceClassification", {}),
    "xlm-roberta": ("XLMRobertaConfig", "XLMRobertaForSequenceClassification", {}),
    "distilbert": ("DistilBertConfig", "DistilBertForSequenceClassification",
                   {"dim": 32, "n_layers": 3, "n_heads": 2, "hidden_dim": 64}),
    "electra": ("ElectraConfig", "ElectraForSequenceClassification", {"embedding_size": 16}),  # projected, as ELECTRA
    "deberta-v2": ("DebertaV2Config", "DebertaV2ForSequenceClassification",  # DeBERTa-v3's shape
                   {"relative_attention": True, "position_buckets": 16, "pos_att_type": ["p2c", "c2p"],
                    "position_biased_input": False}),
    "deberta-v2-conv": ("DebertaV2Config", "DebertaV2ForSequenceClassification",  # DeBERTa-v2-xlarge's shape
                        {"relative_attention": True, "position_buckets": 16, "pos_att_type": ["p2c", "c2p"],
                         "position_biased_input": False, "conv_kernel_size": 3, "norm_rel_ebd": "layer_norm"}),
    "deberta": ("DebertaConfig", "DebertaForSequenceClassification",
                {"relative_attention": True, "pos_att_type": ["p2c", "c2p"]}),
    "mpnet": ("MPNetConfig", "MPNetForSequenceClassification", {}),
    "albert": ("AlbertConfig", "AlbertForSequenceClassification", {"embedding_size": 16}),
    "modernbert": ("ModernBertConfig", "ModernBertForSequenceClassification", {}),  # ships with every dropout 0
    # fine-tuned with dropout, pooling the mean of the tokens, a sliding window shorter than the test texts
    "modernbert-mean": ("ModernBertConfig", "ModernBertForSequenceClassification",
                        {"classifier_pooling": "mean", "local_attention": 4, "classifier_dropout": 0.1,
                         "mlp_dropout": 0.1, "embedding_dropout": 0.1}),
}


def save_tiny_architecture(directory: Path, architecture: str, *, labels: tuple[str, ...] = ("negative", "positive"),
                           seed: int = 0) -> Path:
    """Write a randomly initialised 3-layer classifier of ``architecture`` (a key of :data:`ARCHITECTURES`) and
    its tokenizer to ``directory``."""
    import torch
    import transformers

    config_name, model_name, own = ARCHITECTURES[architecture]
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    special = {"pad_token_id": tokenizer.pad_token_id, "bos_token_id": tokenizer.cls_token_id,
               "eos_token_id": tokenizer.sep_token_id, "cls_token_id": tokenizer.cls_token_id,
               "sep_token_id": tokenizer.sep_token_id}
    config = getattr(transformers, config_name)(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=64, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={label: index for index, label in enumerate(labels)},
        **special, **own)
    model = getattr(transformers, model_name)(config)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


_REMOTE_CONFIG_CODE = '''from transformers import BertConfig


class TinyRemoteConfig(BertConfig):
    model_type = "tiny-remote-bert"
'''
_REMOTE_MODEL_CODE = '''from transformers import BertForSequenceClassification
from transformers.modeling_outputs import SequenceClassifierOutput

from .configuration_tiny_remote import TinyRemoteConfig


class TinyRemoteForSequenceClassification(BertForSequenceClassification):
    config_class = TinyRemoteConfig
    mean_pooled = MEAN_POOLED

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, output_hidden_states=None, **kwargs):
        if not self.mean_pooled:
            return super().forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                                   output_hidden_states=output_hidden_states, **kwargs)
        # the team's own head: the mean of the real tokens, not BERT's pooler
        output = self.bert(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                           output_hidden_states=output_hidden_states)
        mask = attention_mask.unsqueeze(-1).to(output.last_hidden_state.dtype)
        pooled = (output.last_hidden_state * mask).sum(dim=1) / mask.sum(dim=1)
        return SequenceClassifierOutput(logits=self.classifier(self.dropout(pooled)),
                                        hidden_states=output.hidden_states)
'''


def save_remote_code_classifier(directory: Path, *, labels: tuple[str, ...] = ("negative", "positive"),
                                seed: int = 0, mean_pooled: bool = False) -> Path:
    """A tiny BERT classifier that ships its own model code, as custom architectures on the Hub do: a config
    type transformers does not know (``tiny-remote-bert``) and ``auto_map`` naming the Python files beside the
    weights that define it. transformers loads it only with ``trust_remote_code=True``. ``mean_pooled``: its
    head reads the mean of the tokens instead of BERT's pooler (BERT's parts, another head)."""
    import json

    save_tiny_classifier(directory, labels=labels, seed=seed)
    (directory / "configuration_tiny_remote.py").write_text(_REMOTE_CONFIG_CODE)
    (directory / "modeling_tiny_remote.py").write_text(_REMOTE_MODEL_CODE.replace("MEAN_POOLED", str(mean_pooled)))
    config = json.loads((directory / "config.json").read_text())
    config.update(model_type="tiny-remote-bert", architectures=["TinyRemoteForSequenceClassification"],
                  auto_map={"AutoConfig": "configuration_tiny_remote.TinyRemoteConfig",
                            "AutoModelForSequenceClassification":
                                "modeling_tiny_remote.TinyRemoteForSequenceClassification"})
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory
