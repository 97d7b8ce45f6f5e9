"""The store on kernels older than this host's (docs/decisions/0012-shared-pattern-pages.md).

Before Linux 6.17 mremap() moves only a range inside one host mapping, and
with MREMAP_FIXED it unmaps the destination first and only then can fail.
Users run such kernels (Debian 12: 6.1).  old_kernel_mremap.c, compiled here
and preloaded into a child process, makes this host's mremap() behave so, or
refuse every move, before or after unmapping its destination: the shared-page
tests pass, nothing crashes, and memory keeps its contents or the call fails
cleanly."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SHIM = re.compile(r"lfafs-mremap-shim: mode (-?\d+) calls (\d+) spans (\d+) failed (\d+)")


@pytest.fixture(scope="module")
def shim(tmp_path_factory) -> Path:
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the mremap shim")
    out = tmp_path_factory.mktemp("shim") / "old_kernel_mremap.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", str(out), str(HERE / "old_kernel_mremap.c"), "-ldl"],
                   check=True, capture_output=True, timeout=120)
    return out


def run_under(shim: Path, mode: int, args: list[str], **env: str) -> tuple[subprocess.CompletedProcess, dict]:
    """Run python with args in a child whose mremap() is the shim's, in the given mode."""
    e = dict(os.environ, LFAFS_MREMAP_SHIM=str(mode), **env)
    # After any sanitizer runtime (.ci/sanitize preloads them; they must come first).
    e["LD_PRELOAD"] = ":".join(p for p in (os.environ.get("LD_PRELOAD", ""), str(shim)) if p)
    out = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=600, env=e, cwd=ROOT)
    assert out.returncode == 0, f"exit {out.returncode}:\n{out.stdout[-5000:]}\n{out.stderr[-3000:]}"
    found = SHIM.findall(out.stderr)
    assert found, f"the shim did not run:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    _, calls, spans, failed = (int(x) for x in found[-1])
    return out, {"calls": calls, "spans": spans, "failed": failed}


def test_the_shared_page_tests_pass_on_a_kernel_before_6_17(shim):
    """Windows of 128 KB: pools' tables are shared in runs there, and bitmaps join those windows."""
    out, seen = run_under(shim, 1, ["-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
                                    str(HERE / "test_shared_pages.py"), str(HERE / "test_pool.py")],
                          LFAFS_PMEM_WINDOW="131072")
    assert seen["calls"] > 0
    # A window without segments is one host mapping: no move ever asks for more.
    assert seen["spans"] == 0, seen


_REFUSED = r'''
import array, ctypes, errno, sys
from lfafs.xlat import PAGE, Attr, Memory, XlatError
from lfafs.xlat._native import ffi, lib
from lfafs.xlat_low_va import GB, build_pool, pool_layout

shim = ctypes.CDLL(None)
MODE = int(sys.argv[1])
MB = 1 << 20
WINDOW = 256 << 10  # 64 pages
WORD = (0x0123_4567_89AB_CDEF).to_bytes(8, "little")
RW = Attr.RW_DATA | Attr.REALM


def pattern(pages):
    return WORD * (pages * PAGE // 8)


def shared(mem):
    out = ffi.new("uint64_t[2]")
    lib.pmem_shared(mem._mem, out, out + 1)
    return int(out[0]), int(out[1])


def refusing(fn, *args):
    """fn(*args) with every move refused; XlatError(ENOMEM) allowed."""
    shim.lfafs_shim_mode(MODE)
    try:
        return fn(*args)
    except XlatError as e:
        assert e.errno == errno.ENOMEM, e
        return None
    finally:
        shim.lfafs_shim_mode(0)


layout = pool_layout(1 << 39, GB)

# 1. A bitmap joins window 4, which holds a shared run, part zeroed and part
#    written, with window 5, never written.  No mremap is needed: it succeeds.
mem = Memory(8 * MB, base_pa=0x8000_0000, window=WINDOW)
w4 = mem.base_pa + 4 * WINDOW
mem.write(w4, pattern(48))
assert lib.pmem_share(mem._mem, w4, 48 * PAGE) == 0
mem.zero(w4 + 16 * PAGE, 16 * PAGE)
mem.write64(w4 + 40 * PAGE, 0x1234)
expect = bytearray(pattern(48))
expect[16 * PAGE:32 * PAGE] = bytes(16 * PAGE)
expect[40 * PAGE:40 * PAGE + 8] = (0x1234).to_bytes(8, "little")
tables_pa = mem.base_pa + 16 * WINDOW
alloc_pa = w4 + 48 * PAGE
assert w4 + WINDOW < alloc_pa + layout.alloc_bytes(tables_pa)
ctx = refusing(build_pool, mem, layout, tables_pa, alloc_pa)
assert ctx is not None
assert mem.read(w4, 48 * PAGE) == bytes(expect)
mem.mmu_on = True
ctx.map_batch(array.array("Q", [0x1_0000_0000] * 500), PAGE, RW)
ctx.check()
assert mem.read(w4, 48 * PAGE) == bytes(expect)
print("segmented join ok")

# 2. The same with window 5 written (plain): its move is refused, so the join
#    fails cleanly and both windows keep their contents.
mem = Memory(8 * MB, base_pa=0x8000_0000, window=WINDOW)
w4 = mem.base_pa + 4 * WINDOW
mem.write(w4, pattern(48))
assert lib.pmem_share(mem._mem, w4, 48 * PAGE) == 0
mem.write64(w4 + 5 * PAGE, 9)
marker = w4 + WINDOW + 50 * PAGE
mem.write64(marker, 0x77)
before = mem.read(w4, 2 * WINDOW)
ctx = refusing(build_pool, mem, layout, mem.base_pa + 16 * WINDOW, w4 + 48 * PAGE)
assert mem.read(w4, 2 * WINDOW) == before
assert mem.read64(marker) == 0x77
if ctx is not None:
    ctx.check()
print("plain join ok", ctx is not None)

# 3. Sharing refused: the run keeps its contents, shared or not.
mem = Memory(8 * MB, base_pa=0x8000_0000, window=WINDOW)
mem.write(mem.base_pa, pattern(64))
r = refusing(lib.pmem_share, mem._mem, mem.base_pa, 64 * PAGE)
assert r in (0, -errno.ENOMEM), r
assert mem.read(mem.base_pa, 64 * PAGE) == pattern(64)
mem.write64(mem.base_pa + 3 * PAGE, 5)
assert mem.read64(mem.base_pa + 3 * PAGE) == 5
assert lib.pmem_share(mem._mem, mem.base_pa + 8 * PAGE, 56 * PAGE) in (0, -errno.ENOMEM)
assert mem.read(mem.base_pa + 8 * PAGE, 56 * PAGE) == pattern(56)
print("share ok", r, shared(mem))

# 4. Zeroing a shared run with fresh memory refused: zeros all the same.
mem = Memory(8 * MB, base_pa=0x8000_0000, window=WINDOW)
mem.write(mem.base_pa, pattern(64))
assert lib.pmem_share(mem._mem, mem.base_pa, 64 * PAGE) == 0
refusing(mem.zero, mem.base_pa + 8 * PAGE, 32 * PAGE)
refusing(mem.write, mem.base_pa + 40 * PAGE, bytes(20 * PAGE))
assert mem.read(mem.base_pa, 64 * PAGE) == pattern(8) + bytes(52 * PAGE) + pattern(4)
refusing(mem.zero, mem.base_pa, 64 * PAGE)
assert mem.read(mem.base_pa, 64 * PAGE) == bytes(64 * PAGE)
mem.write(mem.base_pa, pattern(64))
assert mem.read(mem.base_pa, 64 * PAGE) == pattern(64)
print("zero ok", shared(mem))
print("done")
'''


@pytest.mark.parametrize("mode", [2, 3], ids=["unmapping-the-destination", "changing-nothing"])
def test_refused_moves_keep_every_byte(shim, mode):
    """Every mremap(MREMAP_FIXED) fails: after unmapping its destination (before 6.17) or not."""
    out, seen = run_under(shim, 0, ["-c", _REFUSED, str(mode)])
    assert out.stdout.rstrip().endswith("done"), out.stdout + out.stderr[-3000:]
    assert seen["failed"] > 0, seen
