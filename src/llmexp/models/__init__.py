"""Plain nn.Module models (GPT/Llama, BERT, T5) and their FamilySpec registry (`llmexp.models.spec`)."""

from llmexp.models.bert import Bert, BertConfig
from llmexp.models.gpt import GPT, GPTConfig
from llmexp.models.spec import FAMILIES, FamilySpec, build_model, config_from_dict, family_of
from llmexp.models.t5 import T5, T5Config

__all__ = [
    "FAMILIES",
    "GPT",
    "T5",
    "Bert",
    "BertConfig",
    "FamilySpec",
    "GPTConfig",
    "T5Config",
    "build_model",
    "config_from_dict",
    "family_of",
]
