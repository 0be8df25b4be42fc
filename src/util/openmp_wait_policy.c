/* libleanseg_openmp_policy.so: bounds how long idle OpenMP threads spin, for leanseg's own
 * executables (never for a host program that links the runtime: its environment is its own).
 *
 * Why: libgomp's threads spin at every barrier (GOMP_SPINCOUNT 300000 by default, a few ms)
 * before they sleep. On 2 cores with a stream of short-lived processes beside it (even at
 * nice 19), the engine's M1 inference went from ~40 ms to ~1,250 ms in 2 of 5 trials, and always
 * with OMP_WAIT_POLICY=active: a spinning thread keeps its core while its partner waits to be
 * scheduled, at each of ~150 barriers. GOMP_SPINCOUNT=100000 measured 42-66 ms in 4 early
 * trials, but the re-run of bench/under_load.sh still collapsed (1256-1262 ms fp32): this bound
 * is not yet shown to fix the load; OMP_WAIT_POLICY=passive held in every trial (README).
 *
 * Mechanism: libgomp reads its wait policy from the environment once, in its own initialiser.
 * This library depends on libc only and is linked as the executable's last DT_NEEDED entry,
 * so glibc runs its initialiser before libgomp's (independent libraries are initialised last
 * first; --no-as-needed keeps it without a reference); tests/cli checks it is in effect in `leanseg`. A user's OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT wins. */
#include <stdlib.h>

#define LEANSEG_GOMP_SPINCOUNT "100000"

__attribute__((constructor)) static void leanseg_bound_openmp_spinning(void) {
  if (getenv("OMP_WAIT_POLICY") != NULL || getenv("GOMP_SPINCOUNT") != NULL) return;
  setenv("GOMP_SPINCOUNT", LEANSEG_GOMP_SPINCOUNT, 0);
  setenv("LEANSEG_OPENMP_POLICY", "GOMP_SPINCOUNT=" LEANSEG_GOMP_SPINCOUNT, 1);
}
