.PHONY: setup demo test test-arm64 bench
setup:
	scripts/setup.sh
demo:
	scripts/demo.sh
test:
	scripts/test.sh
test-arm64:
	scripts/test-arm64.sh
bench:
	scripts/setup.sh && .venv/bin/python benchmarks/quantize.py
