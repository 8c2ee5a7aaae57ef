.PHONY: setup lock demo lint test test-arm64 bench
setup:
	scripts/setup.sh
# constraints.txt from the tested .venv (not reinstalled from the old lock first), resolved against PyPI alone
lock:
	.venv/bin/python scripts/lock.py
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
