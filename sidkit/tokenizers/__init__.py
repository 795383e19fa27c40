"""Tokenizers: item embeddings -> semantic IDs. Registry, save and load."""

from sidkit.tokenizers.base import Encoded, Tokenizer, TokenizerConfig, build_tokenizer, load_tokenizer, register

__all__ = ["Encoded", "Tokenizer", "TokenizerConfig", "build_tokenizer", "load_tokenizer", "register"]
