"""Generative retrieval over semantic IDs (TIGER-style): metrics, SID trie, generator, beam search."""
