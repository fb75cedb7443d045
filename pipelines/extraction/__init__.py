"""Extraction: the LLM extractor of consolidation (observations, links, arbitration)."""
