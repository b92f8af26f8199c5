"""Text frontend: English text to espeak-ng phonemes and vocabulary ids."""
