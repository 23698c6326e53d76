"""Kokoro's vocabulary lives in kopt.core.vocab (the contract's test sentence needs it, and core
imports nothing above it); this name stays for the callers that import it from here."""

from kopt.core.vocab import default_vocab, load_vocab

__all__ = ["default_vocab", "load_vocab"]
