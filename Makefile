# lfafs: the two commands of the README, and the checks CI runs.
#   make run   set up what is missing, then run lfafs on the embedded default platform
#   make test  the same set-up, then the whole test suite

PYTHON ?= python3
MOUNTPOINT ?= /tmp/lfafs/firmware
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEPS   := pyproject.toml setup.py lfafs/_native_build.py $(wildcard native/*.c native/*.h)

.PHONY: run test sanitize bench clean system-deps

# The main job: the embedded default platform served at $(MOUNTPOINT) until Ctrl-C.
run: $(STAMP)
	@mkdir -p $(MOUNTPOINT)
	@echo "lfafs: in another shell try: grep . $(MOUNTPOINT)/lfa/*/name   (Ctrl-C here stops it)"
	$(BIN)/lfafs mount --foreground $(MOUNTPOINT)

test: $(STAMP)
	$(BIN)/python -m pytest

# The native tests again, with the C core built under ASan and UBSan.
sanitize: $(STAMP)
	./.ci/sanitize

bench: $(STAMP)
	$(BIN)/lfafs bench all

# libfuse3 for the mount: installed with apt when missing and running as root.
system-deps:
	@if ldconfig -p | grep -q 'libfuse3\.so\.3' && command -v fusermount3 >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "lfafs: installing libfuse3 (apt-get install fuse3 libfuse3-3)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fuse3 libfuse3-3 >/dev/null; \
	else \
		echo "lfafs: libfuse3 is missing. Install it with: sudo apt-get install fuse3 libfuse3-3" >&2; exit 1; \
	fi

$(STAMP): $(DEPS) | system-deps
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	@touch $@

clean:
	rm -rf $(VENV) build *.egg-info lfafs/*.so .pytest_cache .hypothesis
