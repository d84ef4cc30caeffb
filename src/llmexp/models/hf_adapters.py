"""State-dict adapters to `transformers`, one per HF architecture: GPT2LMHeadModel and LlamaForCausalLM (both our GPT
family), BertForMaskedLM, T5ForConditionalGeneration. A family's FamilySpec lists the adapters that can hold it.

Each adapter is a list of (our key, HF key) pairs plus the few tensors that change shape (GPT-2's Conv1D weights are
transposed; Llama's q/k/v are one fused matrix on our side). `transformers` is imported only when a config is built.
"""

from __future__ import annotations

from typing import Any

import torch

from llmexp.errors import CheckpointError
from llmexp.models.bert import BertConfig
from llmexp.models.gpt import GPTConfig
from llmexp.models.t5 import T5Config

State = dict[str, torch.Tensor]


class HFAdapter:
    """One HF architecture: whether a config fits it, its HF config, and the key map between the two state dicts."""

    model_type: str  # transformers' `config.model_type`
    hf_class: str  # the transformers model class that holds it

    def mismatch(self, config: Any) -> str | None:
        """Why this architecture cannot hold `config` exactly (None when it can)."""
        return None

    def hf_config(self, config: Any, eos_id: int | None):
        raise NotImplementedError

    def config_from_hf(self, hf: Any) -> Any:
        raise NotImplementedError

    def pairs(self, config: Any) -> list[tuple[str, str]]:
        """(our key, HF key) for every tensor that only changes its name."""
        raise NotImplementedError

    def to_hf_state(self, config: Any, ours: State) -> State:
        return {theirs: ours[o] for o, theirs in self.pairs(config)}

    def from_hf_state(self, config: Any, theirs: State) -> State:
        try:
            return self._from_hf_state(config, theirs)
        except KeyError as err:
            raise CheckpointError(f"the {self.model_type} weights have no tensor {err.args[0]!r}") from None

    def _from_hf_state(self, config: Any, theirs: State) -> State:
        return {o: theirs[t] for o, t in self.pairs(config)}


def _weight_and_bias(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(f"{o}.{p}", f"{h}.{p}") for o, h in pairs for p in ("weight", "bias")]


class GPT2Adapter(HFAdapter):
    model_type, hf_class = "gpt2", "GPT2LMHeadModel"

    def mismatch(self, config: GPTConfig) -> str | None:
        shape = (config.pos_emb, config.norm, config.mlp, config.bias)
        if shape != ("learned", "layernorm", "gelu", True) or config.n_kv_head != config.n_head:
            return "GPT-2 needs pos_emb=learned, norm=layernorm, mlp=gelu, bias=true and n_kv_head=n_head"
        return None

    def hf_config(self, config: GPTConfig, eos_id: int | None):
        import transformers as tf

        return tf.GPT2Config(
            vocab_size=config.vocab_size, n_positions=config.max_seq_len, n_embd=config.n_embd,
            n_layer=config.n_layer, n_head=config.n_head, n_inner=config.intermediate_size,
            activation_function="gelu_new", resid_pdrop=config.dropout, embd_pdrop=config.dropout,
            attn_pdrop=config.dropout, layer_norm_epsilon=config.norm_eps, initializer_range=config.init_std,
            bos_token_id=eos_id, eos_token_id=eos_id, tie_word_embeddings=config.tie_embeddings,
        )  # fmt: skip

    def config_from_hf(self, hf: Any) -> GPTConfig:
        if hf.activation_function != "gelu_new":
            raise CheckpointError(f"gpt2 activation_function={hf.activation_function!r}; only 'gelu_new' is supported")
        return GPTConfig(
            vocab_size=hf.vocab_size, n_layer=hf.n_layer, n_head=hf.n_head, n_embd=hf.n_embd,
            max_seq_len=hf.n_positions, intermediate_size=hf.n_inner or 4 * hf.n_embd, norm_eps=hf.layer_norm_epsilon,
            dropout=hf.resid_pdrop, tie_embeddings=hf.tie_word_embeddings, init_std=hf.initializer_range,
        )  # fmt: skip

    def pairs(self, config: GPTConfig) -> list[tuple[str, str]]:
        pairs = [("wte.weight", "transformer.wte.weight"), ("wpe.weight", "transformer.wpe.weight")]
        pairs += [("norm_f.weight", "transformer.ln_f.weight"), ("norm_f.bias", "transformer.ln_f.bias")]
        for i in range(config.n_layer):
            o, h = f"blocks.{i}.", f"transformer.h.{i}."
            for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
                pairs += [(f"{o}{ours}.{p}", f"{h}{theirs}.{p}") for p in ("weight", "bias")]
            for ours, theirs in (("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"), ("mlp.up", "mlp.c_fc")):
                pairs.append((f"{o}{ours}.bias", f"{h}{theirs}.bias"))
            pairs.append((f"{o}mlp.down.bias", f"{h}mlp.c_proj.bias"))
        return [*pairs, ("lm_head.weight", "lm_head.weight")]

    @staticmethod
    def transposed(config: GPTConfig) -> list[tuple[str, str]]:
        """GPT-2 stores its linear layers as Conv1D, [in, out]: the transpose of ours."""
        names = [("attn.qkv", "attn.c_attn"), ("attn.proj", "attn.c_proj"), ("mlp.up", "mlp.c_fc")]
        names.append(("mlp.down", "mlp.c_proj"))
        layers = range(config.n_layer)
        return [(f"blocks.{i}.{a}.weight", f"transformer.h.{i}.{b}.weight") for i in layers for a, b in names]

    def to_hf_state(self, config: GPTConfig, ours: State) -> State:
        state = super().to_hf_state(config, ours)
        state.update({theirs: ours[o].t().contiguous() for o, theirs in self.transposed(config)})
        return state

    def _from_hf_state(self, config: GPTConfig, theirs: State) -> State:
        state = super()._from_hf_state(config, theirs)
        state.update({o: theirs[t].t().contiguous() for o, t in self.transposed(config)})
        return state


class LlamaAdapter(HFAdapter):
    model_type, hf_class = "llama", "LlamaForCausalLM"

    def mismatch(self, config: GPTConfig) -> str | None:
        if (config.pos_emb, config.norm, config.mlp) != ("rope", "rmsnorm", "swiglu"):
            return "Llama needs pos_emb=rope, norm=rmsnorm and mlp=swiglu"
        return None

    def hf_config(self, config: GPTConfig, eos_id: int | None):
        import transformers as tf

        return tf.LlamaConfig(
            vocab_size=config.vocab_size, hidden_size=config.n_embd, intermediate_size=config.intermediate_size,
            num_hidden_layers=config.n_layer, num_attention_heads=config.n_head,
            num_key_value_heads=config.n_kv_head, max_position_embeddings=config.max_seq_len,
            rms_norm_eps=config.norm_eps, rope_parameters={"rope_type": "default", "rope_theta": config.rope_theta},
            attention_bias=config.bias, mlp_bias=config.bias, attention_dropout=config.dropout,
            tie_word_embeddings=config.tie_embeddings, initializer_range=config.init_std,
            bos_token_id=eos_id, eos_token_id=eos_id,
        )  # fmt: skip

    def config_from_hf(self, hf: Any) -> GPTConfig:
        rope = hf.rope_parameters or {}
        if rope.get("rope_type", "default") != "default":
            raise CheckpointError(f"llama rope_type={rope.get('rope_type')!r}; only 'default' RoPE is supported")
        return GPTConfig(
            vocab_size=hf.vocab_size, n_layer=hf.num_hidden_layers, n_head=hf.num_attention_heads,
            n_kv_head=hf.num_key_value_heads, n_embd=hf.hidden_size, max_seq_len=hf.max_position_embeddings,
            intermediate_size=hf.intermediate_size, mlp="swiglu", norm="rmsnorm", norm_eps=hf.rms_norm_eps,
            pos_emb="rope", rope_theta=rope.get("rope_theta", 10000.0), bias=hf.attention_bias,
            dropout=hf.attention_dropout, tie_embeddings=hf.tie_word_embeddings, init_std=hf.initializer_range,
        )  # fmt: skip

    def pairs(self, config: GPTConfig) -> list[tuple[str, str]]:
        pairs = [("wte.weight", "model.embed_tokens.weight"), ("norm_f.weight", "model.norm.weight")]
        names = [("attn.proj", "self_attn.o_proj"), ("mlp.gate", "mlp.gate_proj"), ("mlp.up", "mlp.up_proj")]
        names += [("mlp.down", "mlp.down_proj")]
        for i in range(config.n_layer):
            o, h = f"blocks.{i}.", f"model.layers.{i}."
            pairs += [(f"{o}norm1.weight", f"{h}input_layernorm.weight")]
            pairs += [(f"{o}norm2.weight", f"{h}post_attention_layernorm.weight")]
            for ours, theirs in names:
                pairs.append((f"{o}{ours}.weight", f"{h}{theirs}.weight"))
                if config.bias:
                    pairs.append((f"{o}{ours}.bias", f"{h}{theirs}.bias"))
        return [*pairs, ("lm_head.weight", "lm_head.weight")]

    @staticmethod
    def fused_qkv(config: GPTConfig) -> list[tuple[str, list[str], list[int]]]:
        """Our fused qkv rows -> Llama's q_proj, k_proj, v_proj."""
        head_dim = config.n_embd // config.n_head
        sizes = [config.n_head * head_dim, config.n_kv_head * head_dim, config.n_kv_head * head_dim]
        out = []
        for i in range(config.n_layer):
            for p in ("weight", "bias") if config.bias else ("weight",):
                names = [f"model.layers.{i}.self_attn.{n}_proj.{p}" for n in "qkv"]
                out.append((f"blocks.{i}.attn.qkv.{p}", names, sizes))
        return out

    def to_hf_state(self, config: GPTConfig, ours: State) -> State:
        state = super().to_hf_state(config, ours)
        for o, names, sizes in self.fused_qkv(config):
            state.update(dict(zip(names, (t.contiguous() for t in ours[o].split(sizes)), strict=True)))
        return state

    def _from_hf_state(self, config: GPTConfig, theirs: State) -> State:
        state = super()._from_hf_state(config, theirs)
        state.update({o: torch.cat([theirs[n] for n in names]) for o, names, _ in self.fused_qkv(config)})
        return state


QKV_NAMES = (("q", "query"), ("k", "key"), ("v", "value"))


class BertAdapter(HFAdapter):
    model_type, hf_class = "bert", "BertForMaskedLM"

    def hf_config(self, config: BertConfig, eos_id: int | None):
        import transformers as tf

        return tf.BertConfig(
            vocab_size=config.vocab_size, hidden_size=config.n_embd, num_hidden_layers=config.n_layer,
            num_attention_heads=config.n_head, intermediate_size=config.intermediate_size, hidden_act="gelu",
            hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout,
            max_position_embeddings=config.max_seq_len, type_vocab_size=config.type_vocab_size,
            layer_norm_eps=config.norm_eps, pad_token_id=config.pad_token_id, initializer_range=config.init_std,
        )  # fmt: skip

    def config_from_hf(self, hf: Any) -> BertConfig:
        return BertConfig(
            vocab_size=hf.vocab_size, n_layer=hf.num_hidden_layers, n_head=hf.num_attention_heads,
            n_embd=hf.hidden_size, intermediate_size=hf.intermediate_size, max_seq_len=hf.max_position_embeddings,
            type_vocab_size=hf.type_vocab_size, norm_eps=hf.layer_norm_eps, dropout=hf.hidden_dropout_prob,
            pad_token_id=hf.pad_token_id or 0, init_std=hf.initializer_range,
        )  # fmt: skip

    def pairs(self, config: BertConfig) -> list[tuple[str, str]]:
        e = "bert.embeddings."
        pairs = [("wte.weight", f"{e}word_embeddings.weight"), ("wpe.weight", f"{e}position_embeddings.weight")]
        pairs += [("wtt.weight", f"{e}token_type_embeddings.weight"), ("lm_head.bias", "cls.predictions.bias")]
        pairs += [("lm_head.weight", "cls.predictions.decoder.weight")]
        modules = [("norm_emb", f"{e}LayerNorm"), ("head_dense", "cls.predictions.transform.dense")]
        modules.append(("head_norm", "cls.predictions.transform.LayerNorm"))
        for i in range(config.n_layer):
            o, h = f"layers.{i}.", f"bert.encoder.layer.{i}."
            modules += [(f"{o}attn.{a}", f"{h}attention.self.{b}") for a, b in QKV_NAMES]
            modules += [(f"{o}attn.o", f"{h}attention.output.dense"), (f"{o}norm1", f"{h}attention.output.LayerNorm")]
            modules += [(f"{o}mlp.up", f"{h}intermediate.dense"), (f"{o}mlp.down", f"{h}output.dense")]
            modules += [(f"{o}norm2", f"{h}output.LayerNorm")]
        return pairs + _weight_and_bias(modules)

    def to_hf_state(self, config: BertConfig, ours: State) -> State:
        return {**super().to_hf_state(config, ours), "cls.predictions.decoder.bias": ours["lm_head.bias"]}


class T5Adapter(HFAdapter):
    model_type, hf_class = "t5", "T5ForConditionalGeneration"

    def mismatch(self, config: T5Config) -> str | None:
        if not config.tie_embeddings:
            return "transformers 5 always ties T5's output head to its input (model.tie_embeddings=false)"
        return None

    def hf_config(self, config: T5Config, eos_id: int | None):
        import transformers as tf

        return tf.T5Config(
            vocab_size=config.vocab_size, d_model=config.n_embd, d_kv=config.head_dim, d_ff=config.intermediate_size,
            num_layers=config.n_layer, num_decoder_layers=config.n_decoder_layer, num_heads=config.n_head,
            relative_attention_num_buckets=config.relative_buckets,
            relative_attention_max_distance=config.relative_max_distance, dropout_rate=config.dropout,
            layer_norm_epsilon=config.norm_eps, feed_forward_proj="relu" if config.mlp == "relu" else "gated-gelu",
            pad_token_id=config.pad_token_id, decoder_start_token_id=config.pad_token_id,
            eos_token_id=eos_id if eos_id is not None else 1,
        )  # fmt: skip

    def config_from_hf(self, hf: Any) -> T5Config:
        return T5Config(
            vocab_size=hf.vocab_size, n_layer=hf.num_layers, n_decoder_layer=hf.num_decoder_layers,
            n_head=hf.num_heads, head_dim=hf.d_kv, n_embd=hf.d_model, intermediate_size=hf.d_ff,
            mlp="geglu" if hf.is_gated_act else "relu", relative_buckets=hf.relative_attention_num_buckets,
            relative_max_distance=hf.relative_attention_max_distance, norm_eps=hf.layer_norm_epsilon,
            dropout=hf.dropout_rate, tie_embeddings=hf.scale_decoder_outputs, pad_token_id=hf.pad_token_id,
        )  # fmt: skip

    def pairs(self, config: T5Config) -> list[tuple[str, str]]:
        pairs = [("shared.weight", "shared.weight"), ("encoder_norm.weight", "encoder.final_layer_norm.weight")]
        pairs += [("decoder_norm.weight", "decoder.final_layer_norm.weight"), ("lm_head.weight", "lm_head.weight")]
        bias = "layer.0.SelfAttention.relative_attention_bias.weight"
        pairs += [("encoder_bias.relative_attention_bias.weight", f"encoder.block.0.{bias}")]
        pairs += [("decoder_bias.relative_attention_bias.weight", f"decoder.block.0.{bias}")]
        mlp = [("mlp.up", "wi"), ("mlp.down", "wo")]
        if config.mlp == "geglu":
            mlp = [("mlp.gate", "wi_0"), ("mlp.up", "wi_1"), ("mlp.down", "wo")]
        for stack, n in (("encoder", config.n_layer), ("decoder", config.n_decoder_layer)):
            for i in range(n):
                o, h = f"{stack}.{i}.", f"{stack}.block.{i}.layer."
                ff = 2 if stack == "decoder" else 1
                pairs += [(f"{o}self_attn.{p}.weight", f"{h}0.SelfAttention.{p}.weight") for p in "qkvo"]
                pairs += [(f"{o}norm1.weight", f"{h}0.layer_norm.weight")]
                pairs += [(f"{o}norm2.weight", f"{h}{ff}.layer_norm.weight")]
                pairs += [(f"{o}{a}.weight", f"{h}{ff}.DenseReluDense.{b}.weight") for a, b in mlp]
                if stack == "decoder":
                    pairs += [(f"{o}cross_attn.{p}.weight", f"{h}1.EncDecAttention.{p}.weight") for p in "qkvo"]
                    pairs += [(f"{o}norm_cross.weight", f"{h}1.layer_norm.weight")]
        return pairs

    def to_hf_state(self, config: T5Config, ours: State) -> State:
        state = super().to_hf_state(config, ours)
        for name in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight"):
            state[name] = ours["shared.weight"]
        return state
