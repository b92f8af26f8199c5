"""Training FlashSpeech: (adversarial) consistency training, prosody refinement and the diffusion baseline."""
