.PHONY: setup demo lint test test-arm64 bench
setup:
	scripts/setup.sh
demo:
	scripts/demo.sh
lint:
	scripts/setup.sh && .venv/bin/python -m ruff check . && .venv/bin/python -m mypy
test:
	scripts/test.sh
test-arm64:
	scripts/test-arm64.sh
bench:
	scripts/setup.sh && .venv/bin/python benchmarks/quantize.py
