"""FlashSpeech, implemented from scratch: latent consistency model, prosody generator, text frontend."""

__version__ = "0.1.0"
