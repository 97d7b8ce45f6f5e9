"""The house rules of docs/architecture.md, checked on the source tree.

- No import circle between lfafs modules, and no import from a lower layer
  to a higher one, tests included (a test of layer N uses layers <= N).
- The driver never imports the platform; the filesystem never imports it
  either (it asks the driver).
- No circle between the C sources (who calls whom, read from the object
  files' symbol tables) or between the C headers.
- No module over about 400 lines without a reason written at its top.
- No comment cites numbering that exists only outside the repository.
"""

from __future__ import annotations

import ast
import pathlib
import re
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PKG = ROOT / "lfafs"

# Layer of each module prefix; the longest matching prefix wins.
LAYERS = {
    "lfafs": 0,  # the package root: the layer map and __version__
    "lfafs.smccc": 0,  # shared vocabulary of the SMC boundary
    "lfafs.uefi": 0,  # shared vocabulary of the EFI runtime-services boundary
    "lfafs.xlat": 1,
    "lfafs.xlat_low_va": 1,
    "lfafs._native_build": 1,
    "lfafs._xlat": 1,
    "lfafs.platform": 2,
    "lfafs.driver": 3,
    "lfafs.fs": 4,
    "lfafs.service": 5,
    "lfafs.fleet": 5,
    "lfafs.testing": 5,
    "lfafs.__main__": 5,
}
TEST_LAYERS = {"native": 1, "platform": 2, "driver": 3, "fs": 4, "shell": 5, "service": 5, "fleet": 5,
               "clients": 5, "reliability": 5}
FORBIDDEN = [  # (importer prefix, imported prefix): sideways imports the rules forbid
    ("lfafs.driver", "lfafs.platform"),
    ("lfafs.fs", "lfafs.platform"),
]


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> int | None:
    best = None
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, layer)
    return None if best is None else best[1]


def known_modules() -> set[str]:
    return {module_name(p) for p in PKG.rglob("*.py")}


def imports_of(path: pathlib.Path, modules: set[str]) -> set[str]:
    """The lfafs modules a file imports, anywhere in it (TYPE_CHECKING and function bodies included).

    ``from lfafs.platform import images`` is an import of lfafs.platform.images
    when that is a module, of the package lfafs.platform otherwise.
    """
    tree = ast.parse(path.read_text(), str(path))
    this = module_name(path) if path.is_relative_to(PKG) else ""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "lfafs":
                    found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = this.split(".")
                if not path.name == "__init__.py":
                    pkg = pkg[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            if base.split(".")[0] != "lfafs":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in modules else base)
    return {m for m in found if m != this}


def graph() -> dict[str, set[str]]:
    modules = known_modules()
    return {module_name(p): imports_of(p, modules) for p in PKG.rglob("*.py")}


def strongly_connected(g: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components of more than one node are circles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in g:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_layer():
    missing = sorted(m for m in known_modules() if layer_of(m) is None)
    assert not missing, f"modules outside the layer map (add them to LAYERS and docs/architecture.md): {missing}"


def test_no_import_circle_between_modules():
    assert strongly_connected(graph()) == []


def test_the_circle_detector_finds_a_circle():
    assert strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_a_higher_layer():
    bad = []
    for mod, deps in graph().items():
        for dep in deps:
            if layer_of(dep) is not None and layer_of(dep) > layer_of(mod):
                bad.append(f"{mod} (layer {layer_of(mod)}) imports {dep} (layer {layer_of(dep)})")
    assert not bad


def test_the_driver_and_the_filesystem_never_import_the_platform():
    def under(name: str, prefix: str) -> bool:
        return name == prefix or name.startswith(prefix + ".")

    bad = [f"{mod} imports {dep}" for mod, deps in graph().items() for dep in deps
           for importer, imported in FORBIDDEN if under(mod, importer) and under(dep, imported)]
    assert not bad


def test_tests_use_only_their_layer_and_below():
    modules = known_modules()
    bad = []
    for layer_dir, layer in TEST_LAYERS.items():
        for path in (ROOT / "tests" / layer_dir).rglob("*.py"):
            for dep in imports_of(path, modules):
                if layer_of(dep) is not None and layer_of(dep) > layer:
                    bad.append(f"{path.relative_to(ROOT)} (layer {layer}) imports {dep}")
    assert not bad


def _reason_at_top(text: str) -> bool:
    head = "\n".join(text.splitlines()[:40]).lower()
    return "one module" in head or "kept together" in head or "why this module is long" in head


def test_no_long_module_without_a_reason_at_its_top():
    long = []
    for path in list(PKG.rglob("*.py")) + list((ROOT / "native").glob("*.[ch]")):
        text = path.read_text()
        if text.count("\n") > 420 and not _reason_at_top(text):
            long.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
    assert not long


# Numbering that exists only in documents outside this repository: the
# project's internal spec summaries, their checklists, and issue numbers.
_FOREIGN = re.compile(
    r"(§\s*\d|\bspec\s+(rmm-lfa|sysfs-abi|smc-abi|uefi-ffa|fleet)\b|\bchecklist\s+(item\s+)?\d"
    r"|\bissue\s+#?\d|\bsysfs-abi\.md\s+\d|\bsmc-abi\.md\s+\d|\brmm-lfa\.md\s+\d"
    r"|\b(rmm-lfa|sysfs-abi|smc-abi)\s+(section\s+)?\d+(\.\d+)*\b|\bsection\s+\d+(\.\d+)+)",
    re.IGNORECASE)


def _comments(path: pathlib.Path) -> list[tuple[int, str]]:
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        out.append((n, line))
    return out


def test_no_citation_of_numbering_outside_the_repository():
    files = [*PKG.rglob("*.py"), *(ROOT / "tests").rglob("*.py"), *(ROOT / "native").glob("*.[ch]"),
             *(ROOT / "lfafs").rglob("*.toml")]
    bad = []
    for path in files:
        if path == pathlib.Path(__file__).resolve():
            continue
        for n, line in _comments(path):
            if _FOREIGN.search(line):
                bad.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not bad, "cite an upstream path and function, or a section of docs/, instead:\n" + "\n".join(bad)


def test_the_citation_check_catches_foreign_numbering():
    for text in ("# spec rmm-lfa 1.9", "# checklist 12", "# see issue 3", "# docs/smc-abi.md 3.3",
                 "# sysfs-abi section 6.2", "# §7 item 4"):
        assert _FOREIGN.search(text), text
    for text in ("# TF-A lfa_main.c, lfa_prime()", "# docs/smc-abi.md, 'Activators'", "# TF-RMM v0.9.0"):
        assert not _FOREIGN.search(text), text


# -- C ----------------------------------------------------------------------------------------

NATIVE = ROOT / "native"


def _include_graph() -> dict[str, set[str]]:
    g = {}
    for path in NATIVE.glob("*.[ch]"):
        g[path.name] = set(re.findall(r'^\s*#\s*include\s+"([^"]+)"', path.read_text(), re.MULTILINE))
    return g


def test_no_include_circle_between_c_headers():
    assert strongly_connected(_include_graph()) == []


@pytest.mark.skipif(shutil.which("gcc") is None or shutil.which("nm") is None, reason="needs gcc and nm")
def test_no_call_circle_between_c_sources(tmp_path):
    """Who calls whom, from each object file's defined (T) and undefined (U) symbols."""
    defined: dict[str, str] = {}
    used: dict[str, set[str]] = {}
    for src in sorted(NATIVE.glob("*.c")):
        obj = tmp_path / (src.stem + ".o")
        subprocess.run(["gcc", "-std=c11", "-O0", "-c", str(src), "-I", str(NATIVE), "-o", str(obj)], check=True)
        syms = subprocess.run(["nm", str(obj)], check=True, capture_output=True, text=True).stdout
        used[src.name] = set()
        for line in syms.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[1] in "TDBR":
                defined[parts[2]] = src.name
            elif len(parts) == 2 and parts[0] == "U":
                used[src.name].add(parts[1])
    calls = {name: {defined[s] for s in syms if s in defined and defined[s] != name} for name, syms in used.items()}
    assert strongly_connected(calls) == [], calls
