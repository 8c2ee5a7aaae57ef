"""Frame to message: preprocessing (:mod:`.preprocess`), decoders, alert rules and publishing policies."""
