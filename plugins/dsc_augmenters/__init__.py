"""Built-in augmenter plugins of dsc: ``dafusion`` (learned class tokens) and ``real-guidance`` (class names)."""
