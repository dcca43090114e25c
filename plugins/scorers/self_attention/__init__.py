"""The ``self-attention`` scorer: a causal transformer over the history (torch, imported lazily)."""

from polyrec.plugins.scorers.self_attention.scorer import SelfAttentionConfig, SelfAttentionScorer, register_scorers

__all__ = ["SelfAttentionConfig", "SelfAttentionScorer", "register_scorers"]
