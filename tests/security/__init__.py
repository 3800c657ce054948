"""Adversarial tests: attacks run against real servers on every build."""
