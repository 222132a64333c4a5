"""Escalation triage: PII, lexicon, classifier, routing policy."""
