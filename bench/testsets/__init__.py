"""Test sets: the manifest format (`manifest`), protocol loaders for local copies of standard sets
(`protocols`), the embedded sets (`embedded`) and the synthetic corpus they are cut from (`synth`)."""
