"""The data layer: audio I/O, the manifest format, protocol loaders and the embedded test sets."""
