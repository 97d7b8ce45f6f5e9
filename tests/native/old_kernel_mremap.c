/* SPDX-License-Identifier: MIT */
/*
 * An LD_PRELOAD shim for tests/native/test_old_kernels.py: mremap() as
 * kernels older than this host's behave, and refusing on demand.  The test
 * compiles it (cc -shared -fPIC) and preloads it after any sanitizer
 * runtime; the C core calls mremap() through the PLT, so this one runs.
 *
 * Modes, from LFAFS_MREMAP_SHIM at the first call or lfafs_shim_mode():
 *   0  pass every call to the C library.
 *   1  Linux before 6.17: a source range over more than one mapping fails
 *      with EFAULT, after an MREMAP_FIXED destination has been unmapped.
 *   2  as 1, and every MREMAP_FIXED call fails with ENOMEM after unmapping
 *      its destination (mremap_to() before 6.17 failing an allocation).
 *   3  every MREMAP_FIXED call fails with ENOMEM and changes nothing
 *      (Linux 6.17 on, or any kernel at the map-count limit).
 * At exit it prints one line to stderr: the mode, the calls it saw, the
 * multi-mapping sources among them and the calls it failed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

static int mode = -1;
static long calls, spans, failed;

int lfafs_shim_mode(int m)
{
	int old = mode;

	mode = m;
	return old;
}

/* [a, a + len) lies inside one mapping of this process. */
static int one_mapping(uintptr_t a, size_t len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int ok = 0;

	while ((f != NULL) && (fgets(line, sizeof(line), f) != NULL)) {
		unsigned long lo, hi;

		if ((sscanf(line, "%lx-%lx", &lo, &hi) == 2) && (lo <= a) && (a < hi)) {
			ok = (a + len) <= hi;
			break;
		}
	}
	if (f != NULL) {
		fclose(f);
	}
	return ok;
}

void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	static void *(*real)(void *, size_t, size_t, int, ...);
	void *to = NULL;
	va_list ap;

	if ((flags & MREMAP_FIXED) != 0) {
		va_start(ap, flags);
		to = va_arg(ap, void *);
		va_end(ap);
	}
	if (real == NULL) {
		real = (void *(*)(void *, size_t, size_t, int, ...))dlsym(RTLD_NEXT, "mremap");
	}
	if (mode < 0) {
		const char *e = getenv("LFAFS_MREMAP_SHIM");

		mode = (e != NULL) ? atoi(e) : 0;
	}
	calls++;
	if ((mode == 1) || (mode == 2)) {
		int multi = !one_mapping((uintptr_t)old, old_len);

		spans += multi;
		if (multi || ((mode == 2) && ((flags & MREMAP_FIXED) != 0))) {
			if ((flags & MREMAP_FIXED) != 0) {
				munmap(to, new_len);
			}
			failed++;
			errno = multi ? EFAULT : ENOMEM;
			return MAP_FAILED;
		}
	}
	if ((mode == 3) && ((flags & MREMAP_FIXED) != 0)) {
		failed++;
		errno = ENOMEM;
		return MAP_FAILED;
	}
	return real(old, old_len, new_len, flags, to);
}

__attribute__((destructor)) static void report(void)
{
	fprintf(stderr, "lfafs-mremap-shim: mode %d calls %ld spans %ld failed %ld\n", mode, calls, spans, failed);
}
