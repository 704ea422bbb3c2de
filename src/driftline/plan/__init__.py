"""Plan: spec + window → ibis expressions. Nothing here executes; the run stage does."""
