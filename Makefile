# The two commands a newcomer needs: `make demo` and `make test`. Both create .venv if missing.
# constraints.txt pins the versions installed here (torch: the CPU wheel); pyproject.toml states
# what diffgates requires.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WHEEL_VENV := build/wheel-venv

.PHONY: demo test lint format wheel-test bench clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt 'setuptools>=68' -e '.[test,hw,fpga,report,image]'
	# torchlogix, which 'diffgates import' is tested against; its layers need none of its own
	# dependencies (torchvision, torch-geometric), so they are left out
	$(PY) -m pip install -q --no-deps torchlogix==0.1.1
	# native Yosys and Icarus where apt can install them (much faster than the WebAssembly wheels)
	command -v yosys >/dev/null && command -v iverilog >/dev/null || \
		{ apt-get update -qq && apt-get install -y -qq yosys iverilog; } || echo "no apt: using the yowasp wheels"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/diffgates train --dataset digits --out runs/demo --overwrite

test: $(STAMP)
	$(PY) -m ruff check src tests
	$(PY) -m pytest
	$(MAKE) wheel-test

# Build the wheel from the working tree, install it (not editable) into a fresh virtual
# environment and run train -> compile -> verify from it, outside the source tree.
wheel-test: $(STAMP)
	rm -rf build/dist $(WHEEL_VENV) build/wheel-run
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w build/dist .
	python3 -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q -c constraints.txt "$$(ls build/dist/diffgates-*.whl)[hw]"
	mkdir -p build/wheel-run
	cd build/wheel-run && ../wheel-venv/bin/python -c "import diffgates, importlib.metadata; \
		from diffgates.circuit import program; \
		assert 'site-packages' in diffgates.__file__, diffgates.__file__; \
		assert importlib.metadata.version('diffgates') == diffgates.__version__, 'the wheel has another version'; \
		assert program.available(), 'the native executor did not build from the wheel'"
	cd build/wheel-run && ../wheel-venv/bin/diffgates --version
	cd build/wheel-run && ../wheel-venv/bin/diffgates train --dataset digits --epochs 5 --widths 1000,1000 --parametrization softmax16 --quiet --out run
	cd build/wheel-run && ../wheel-venv/bin/python -m diffgates compile run --vectors 500
	cd build/wheel-run && ../wheel-venv/bin/diffgates verify run/export

lint: $(STAMP)
	$(PY) -m ruff check src tests
	$(PY) -m ruff format --check src tests

format: $(STAMP)
	$(PY) -m ruff format src tests
	$(PY) -m ruff check --fix src tests

clean:
	rm -rf $(VENV) runs build *.egg-info src/*.egg-info
