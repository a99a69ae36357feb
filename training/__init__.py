"""Adapt CLIP to the user's labelled folders: a few-shot head (quick), FLYP fine-tuning (full),
and contrastive training on captions. Imports the core, never Qt; see `training.api`."""
