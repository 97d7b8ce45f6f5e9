# lfafs: the commands of the README, and the checks CI runs.
#   make run      set up what is missing, then run lfafs on the embedded default platform
#   make test     the same set-up, then the whole test suite
#   make install  put lfafs on PATH: $(PREFIX)/bin/lfafs (a link into .venv), its man page and
#                 completions; PREFIX is /usr/local for root (systemd's unit runs that one),
#                 ~/.local otherwise (make install-user says so explicitly)

PYTHON ?= python3
MOUNTPOINT ?= /tmp/lfafs/firmware
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEPS   := pyproject.toml setup.py lfafs/_native_build.py $(wildcard native/*.c native/*.h)
PREFIX ?= $(if $(filter 0,$(shell id -u)),/usr/local,$(HOME)/.local)

.PHONY: run test sanitize bench clean system-deps install install-user uninstall man package-smoke reliability

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

# Fuzz, crash consistency (SIGKILL, full and read-only disks), soak and bad input: a few minutes, as
# root with /dev/fuse (docs/reliability.md). CI runs the short form: LFAFS_RELIABILITY=short;
# LFAFS_SEED=<seed> replays a run.
reliability: $(STAMP)
	LFAFS_RELIABILITY=$${LFAFS_RELIABILITY:-full} $(BIN)/python -m pytest -q -p no:cacheprovider tests/reliability

bench: $(STAMP)
	$(BIN)/lfafs bench all

# lfafs on PATH, as a link to the venv's command (whose interpreter path is absolute).
install: $(STAMP)
	install -d $(PREFIX)/bin $(PREFIX)/share/man/man1 $(PREFIX)/share/bash-completion/completions \
		$(PREFIX)/share/zsh/site-functions
	ln -sf $(abspath $(BIN))/lfafs $(PREFIX)/bin/lfafs
	$(BIN)/lfafs man > $(PREFIX)/share/man/man1/lfafs.1
	$(BIN)/lfafs completion bash > $(PREFIX)/share/bash-completion/completions/lfafs
	$(BIN)/lfafs completion zsh > $(PREFIX)/share/zsh/site-functions/_lfafs
	@case ":$$PATH:" in *":$(PREFIX)/bin:"*) echo "lfafs: installed $(PREFIX)/bin/lfafs";; \
		*) echo "lfafs: installed $(PREFIX)/bin/lfafs; add $(PREFIX)/bin to PATH (or log in again) to call it lfafs";; esac

install-user:
	$(MAKE) install PREFIX=$(HOME)/.local

uninstall:
	rm -f $(PREFIX)/bin/lfafs $(PREFIX)/share/man/man1/lfafs.1 \
		$(PREFIX)/share/bash-completion/completions/lfafs $(PREFIX)/share/zsh/site-functions/_lfafs

# The man page in docs/, generated from the command tree (tests/service/test_cli.py checks it is current).
man: $(STAMP)
	$(BIN)/lfafs man > docs/lfafs.1

# The sdist and the wheel, built and installed outside the repository, then used.
package-smoke:
	./.ci/package-smoke

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
