"""The one tokenizer abstraction (`Tokenizer`), how a run gets one (`TokenizerSpec`: train or load), and the chat
template that travels with instruction-tuned checkpoints."""

from llmexp.tokenizer.chat import ChatTemplate
from llmexp.tokenizer.spec import TokenizerSpec
from llmexp.tokenizer.tokenizer import EOS_TOKEN, Tokenizer

__all__ = ["EOS_TOKEN", "ChatTemplate", "Tokenizer", "TokenizerSpec"]
