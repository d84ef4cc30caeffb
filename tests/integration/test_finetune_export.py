"""A LoRA fine-tune, merged and exported with `llmexp-export`, loads in transformers and generates the same text."""

from __future__ import annotations

from pathlib import Path

import torch
from omegaconf import OmegaConf

from llmexp.artifacts.inference import save_inference_checkpoint
from llmexp.cli.export import export
from llmexp.finetune.adapters import LoRA
from llmexp.models.generation import SamplingConfig, generate
from llmexp.models.gpt import GPTConfig
from llmexp.tokenizer import ChatTemplate, Tokenizer

ASSETS = Path(__file__).resolve().parents[1] / "assets"


def test_merged_lora_export_loads_and_generates_identically_in_transformers(tmp_path):
    import transformers

    tokenizer = Tokenizer.load(ASSETS / "tokenizer.json")
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=tokenizer.vocab_size, n_layer=2, n_head=2, n_embd=32, max_seq_len=64, init_std=0.3)
    model = cfg.build()
    adapter = LoRA(r=4, alpha=8, target_modules=["qkv", "proj", "up", "down"])
    adapter.apply(model)
    for name, param in model.named_parameters():  # stand-in for training: adapters that change the output
        if ".lora_B." in name:
            torch.nn.init.normal_(param, std=0.2)
    merged = adapter.merged(model).eval()
    template = ChatTemplate()
    metadata = {"task": "sft", "chat_template": template.to_dict()}
    ckpt = save_inference_checkpoint(tmp_path / "merged.ckpt", merged, tokenizer, metadata)
    out = tmp_path / "exported"
    sampling = {"max_new_tokens": 32, "temperature": 0.7, "top_k": 40, "top_p": None, "repetition_penalty": 1.0}
    export(OmegaConf.create({"ckpt_path": str(ckpt), "out": str(out), "generation": sampling}))

    hf_model = transformers.AutoModelForCausalLM.from_pretrained(out, local_files_only=True).eval()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(out, local_files_only=True)
    generation = transformers.GenerationConfig.from_pretrained(out, local_files_only=True)
    assert generation.eos_token_id == tokenizer.eos_id and generation.top_k == 40 and generation.max_new_tokens == 32

    messages = [{"role": "user", "content": "Add 2 and 3."}]
    prompt = hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == template.render_prompt(messages)
    ids = tokenizer.encode(prompt)
    ours = generate(merged, [ids], SamplingConfig(max_new_tokens=16, temperature=0), tokenizer.eos_id)[0]
    with torch.no_grad():
        theirs = hf_model.generate(torch.tensor([ids]), max_new_tokens=16, do_sample=False)[0, len(ids) :].tolist()
    if theirs and theirs[-1] == tokenizer.eos_id:  # transformers keeps the EOS it stopped at; ours leaves it out
        theirs = theirs[:-1]
    assert ours == theirs and len(ours) >= 1
