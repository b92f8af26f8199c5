"""Training FlashSpeech: adversarial consistency training and prosody refinement (issue 6, in progress)."""
