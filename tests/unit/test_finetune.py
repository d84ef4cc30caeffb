"""SFT labels and packing, LoRA and freezing, merged export: the pieces of fine-tuning, without a Trainer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from llmexp.artifacts.hf_dir import chat_template_jinja, generation_config
from llmexp.artifacts.inference import load_for_inference, save_inference_checkpoint
from llmexp.data.preference import PreferenceDataModule
from llmexp.data.sft import IGNORE, SFTDataModule, collate, encode_example, pack, segments_of
from llmexp.errors import ConfigError, DataError
from llmexp.finetune.adapters import Freeze, LoRA, trainable_parameter_names
from llmexp.models.gpt import GPTConfig
from llmexp.tasks.classification import SequenceClassifier
from llmexp.tokenizer import ChatTemplate, Tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    return Tokenizer.load(ASSETS / "tokenizer.json")


def tiny_gpt(vocab_size: int, **overrides):
    torch.manual_seed(0)
    fields = {"n_layer": 2, "n_head": 2, "n_embd": 32, "max_seq_len": 64, **overrides}
    return GPTConfig(vocab_size=vocab_size, **fields).build()


def test_sft_labels_are_exactly_the_response_tokens_and_eos(tokenizer):
    template = ChatTemplate()
    row = {"instruction": "Add the numbers.", "input": "2 and 3", "output": "The sum is 5."}
    prompt_ids = tokenizer.encode(template.instruction_prompt("Add the numbers.", "2 and 3"))
    response_ids = tokenizer.encode("The sum is 5.")
    input_ids, labels = encode_example(tokenizer, segments_of(row, template), block_size=200)
    assert input_ids == prompt_ids + response_ids  # the closing EOS is a target, never an input
    assert labels == [IGNORE] * (len(prompt_ids) - 1) + response_ids + [tokenizer.eos_id]


def test_chat_rows_train_only_on_assistant_turns(tokenizer):
    template = ChatTemplate()
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "See you."},
    ]
    _, labels = encode_example(tokenizer, segments_of({"messages": messages}, template), block_size=200)
    trained = [label for label in labels if label != IGNORE]
    expected = tokenizer.encode("Hello!\n") + tokenizer.encode("See you.") + [tokenizer.eos_id]
    assert trained == expected


def test_an_example_whose_response_does_not_fit_is_dropped(tokenizer):
    row = {"instruction": "word " * 50, "output": "answer"}
    assert encode_example(tokenizer, segments_of(row, ChatTemplate()), block_size=8) is None


@pytest.mark.parametrize("pos_emb", ["learned", "rope", "sinusoidal"])
def test_packed_rows_give_each_example_the_logits_it_has_alone(tokenizer, pos_emb):
    model = tiny_gpt(tokenizer.vocab_size, pos_emb=pos_emb).eval()
    examples = [([5, 6, 7, 8], [6, 7, 8, 9]), ([10, 11, 12], [11, 12, 13]), ([20, 21, 22, 23, 24], [21] * 5)]
    rows = pack(examples, block_size=10, pad_id=tokenizer.eos_id)
    assert len(rows) == 2 and rows[0]["segment_ids"] == [0] * 4 + [1] * 3 + [-1] * 3
    batch = collate(rows, tokenizer.eos_id)
    with torch.no_grad():
        packed = model(batch["input_ids"], position_ids=batch["position_ids"], segment_ids=batch["segment_ids"])
        alone = [model(torch.tensor([ids]))[0] for ids, _ in examples]
    torch.testing.assert_close(packed[0, :4], alone[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed[0, 4:7], alone[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed[1, :5], alone[2], atol=1e-5, rtol=1e-5)
    assert batch["labels"][0, 7:].tolist() == [IGNORE] * 3


def train_steps(model, steps: int = 3) -> None:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    ids = torch.randint(0, model.config.vocab_size, (4, 16), generator=torch.Generator().manual_seed(1))
    for _ in range(steps):
        logits = model(ids[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def test_lora_trains_only_adapter_parameters(tokenizer):
    model = tiny_gpt(tokenizer.vocab_size)
    base = {k: v.clone() for k, v in model.state_dict().items()}
    LoRA(r=4, alpha=8, target_modules=["qkv", "up"]).apply(model)
    names = trainable_parameter_names(model)
    assert names and all(".lora_A." in n or ".lora_B." in n for n in names)
    assert {n.split(".lora_")[0].rsplit(".", 1)[-1] for n in names} == {"qkv", "up"}
    train_steps(model)
    after = model.state_dict()
    for key, value in base.items():  # every base weight (now under base_layer for adapted layers) is unchanged
        adapted = key.replace(".weight", ".base_layer.weight").replace(".bias", ".base_layer.bias")
        torch.testing.assert_close(after[adapted] if adapted in after else after[key], value, rtol=0, atol=0)
    assert any(after[n].abs().sum() > 0 for n in names if ".lora_B." in n)  # B starts at zero and has moved


def test_merged_model_equals_base_plus_adapter(tokenizer):
    model = tiny_gpt(tokenizer.vocab_size)
    adapter = LoRA(r=4, alpha=16, target_modules=["qkv", "proj", "up", "down"])
    adapter.apply(model)
    train_steps(model)
    model.eval()
    merged = adapter.merged(model).eval()
    assert set(merged.state_dict()) == set(tiny_gpt(tokenizer.vocab_size).state_dict())  # a plain GPT again
    layer = model.blocks[0].attn.qkv
    scale = adapter.alpha / adapter.r
    delta = scale * layer.lora_B["default"].weight @ layer.lora_A["default"].weight
    torch.testing.assert_close(merged.blocks[0].attn.qkv.weight, layer.base_layer.weight + delta)
    ids = torch.randint(0, tokenizer.vocab_size, (2, 12), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(merged(ids), model(ids), atol=1e-5, rtol=1e-5)
    assert any(type(m).__name__ == "Linear" and hasattr(m, "lora_A") for m in model.modules())  # training copy kept


def test_merged_model_saves_and_loads_as_an_inference_checkpoint(tokenizer, tmp_path):
    model = tiny_gpt(tokenizer.vocab_size)
    adapter = LoRA(r=2, alpha=4)
    adapter.apply(model)
    train_steps(model, steps=2)
    path = save_inference_checkpoint(tmp_path / "merged.ckpt", adapter.merged(model), tokenizer, {"task": "sft"})
    loaded, loaded_tokenizer, metadata = load_for_inference(path)
    ids = torch.tensor([[3, 4, 5, 6]])
    with torch.no_grad():
        torch.testing.assert_close(loaded(ids), model.eval()(ids), atol=1e-5, rtol=1e-5)
    assert metadata["task"] == "sft" and loaded_tokenizer.vocab_size == tokenizer.vocab_size


def test_lora_refuses_unknown_target_modules(tokenizer):
    with pytest.raises(ConfigError, match=r"finetune\.target_modules"):
        LoRA(target_modules=["q_proj"]).apply(tiny_gpt(tokenizer.vocab_size))


def test_freeze_keeps_embeddings_and_lower_blocks(tokenizer):
    model = Freeze(layers=1).apply(tiny_gpt(tokenizer.vocab_size, n_layer=3))
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert {"wte.weight", "wpe.weight"} <= frozen
    assert all(n.startswith("blocks.0.") for n in frozen - {"wte.weight", "wpe.weight"})
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith(("blocks.1.", "blocks.2.")))


def test_classifier_with_lora_trains_adapters_and_head_only(tokenizer):
    classifier = SequenceClassifier(tiny_gpt(tokenizer.vocab_size), num_labels=3)
    LoRA(r=2).apply(classifier.backbone)
    names = trainable_parameter_names(classifier)
    assert {"head.weight", "head.bias"} <= set(names)
    assert all("lora_" in n for n in names if not n.startswith("head."))
    logits = classifier(torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0]]), torch.tensor([3, 2]))
    assert logits.shape == (2, 3)


def test_classifier_pools_the_last_real_token_so_padding_changes_nothing(tokenizer):
    classifier = SequenceClassifier(tiny_gpt(tokenizer.vocab_size), num_labels=2).eval()
    with torch.no_grad():
        short = classifier(torch.tensor([[5, 6, 7]]), torch.tensor([3]))
        padded = classifier(torch.tensor([[5, 6, 7, 1, 1]]), torch.tensor([3]))
    torch.testing.assert_close(short, padded)


def test_generation_config_uses_transformers_field_names(tokenizer):
    config = generation_config(tokenizer)
    assert config["eos_token_id"] == tokenizer.eos_id and config["do_sample"] is True
    assert {"max_new_tokens", "temperature", "top_k"} <= set(config)


def test_exported_chat_template_renders_like_ours():
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ChatTemplate()
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "Bye"},
    ]
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)  # as transformers renders it
    rendered = env.from_string(chat_template_jinja(template)).render(messages=messages, add_generation_prompt=True)
    assert rendered == template.render_prompt(messages)


def test_bert_classifier_mean_pools_the_real_tokens_only():
    from llmexp.models.bert import BertConfig

    torch.manual_seed(0)
    bert = BertConfig(vocab_size=60, n_layer=2, n_head=2, n_embd=32, max_seq_len=32, dropout=0.0).build()
    classifier = SequenceClassifier(bert, num_labels=2).eval()
    with torch.no_grad():
        short = classifier(torch.tensor([[5, 6, 7]]), torch.tensor([3]))
        padded = classifier(torch.tensor([[5, 6, 7, 1, 1]]), torch.tensor([3]))
    torch.testing.assert_close(short, padded, atol=1e-5, rtol=1e-5)


def test_freeze_works_on_bert_layers():
    from llmexp.models.bert import BertConfig

    bert = Freeze(layers=1).apply(BertConfig(vocab_size=60, n_layer=2, n_head=2, n_embd=32, max_seq_len=32).build())
    frozen = {n.split(".")[0] for n, p in bert.named_parameters() if not p.requires_grad}
    assert {"wte", "wpe", "wtt", "norm_emb"} <= frozen
    assert all(not p.requires_grad for p in bert.layers[0].parameters())
    assert all(p.requires_grad for p in bert.layers[1].parameters())


@pytest.mark.parametrize("module", [SFTDataModule, PreferenceDataModule])
def test_too_few_rows_to_hold_out_validation_names_the_cause(tmp_path, module):
    rows = tmp_path / "one.jsonl"
    rows.write_text('{"instruction": "Say hi", "output": "hi", "prompt": "Hi", "chosen": "hi", "rejected": "no"}\n')
    with pytest.raises(DataError, match=r"1 row\(s\) leave none to train on .* data.val_file"):
        module(train_file=str(rows))._rows()
