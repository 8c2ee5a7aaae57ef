"""A bundle on the device: its manifest (:mod:`.manifest`), the named checks that verify it
(:mod:`.verify`) and the self-test against its golden outputs (:mod:`.selftest`)."""
