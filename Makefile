.PHONY: setup demo test bench
setup:
	scripts/setup.sh
demo:
	scripts/demo.sh
test:
	scripts/test.sh
bench:
	scripts/setup.sh && .venv/bin/python benchmarks/quantize.py
