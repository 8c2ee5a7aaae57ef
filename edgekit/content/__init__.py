"""Content that ships inside installed packages: real photographs and videos (:mod:`.samples`)
and small pretrained models (:mod:`.zoo`)."""
