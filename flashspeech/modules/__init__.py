"""Neural building blocks of FlashSpeech: encoders, prosody predictors, the WaveNet backbone."""
