"""Training orchestration: data sources -> feature cache -> the trainer in `flashspeech.training`."""
