/* libleanseg_openmp_policy.so: bounds how long idle OpenMP threads spin, for leanseg's own
 * executables (never for a host program that links the runtime: its environment is its own).
 *
 * Why: libgomp's threads spin at every barrier (GOMP_SPINCOUNT 300000 by default, a few ms)
 * before they sleep. On 2 cores with a stream of short-lived processes beside it (even at
 * nice 19), the engine's M1 inference went from ~40 ms to ~1,250 ms in 2 of 5 trials, and always
 * with OMP_WAIT_POLICY=active: a spinning thread keeps its core while its partner waits to be
 * scheduled, at each of ~150 barriers. With GOMP_SPINCOUNT=100000 the same load measured
 * 42-66 ms in every trial and idle speed was unchanged (bench/under_load.sh; README).
 *
 * Mechanism: libgomp reads its wait policy from the environment once, in its own initialiser.
 * This library depends on libc only and is linked as the executable's last DT_NEEDED entry,
 * so glibc runs its initialiser before libgomp's (independent libraries are initialised last
 * first); tests/cli checks that the policy is in effect. A user's OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT wins. */
#include <stdlib.h>

#define LEANSEG_GOMP_SPINCOUNT "100000"

__attribute__((constructor)) static void leanseg_bound_openmp_spinning(void) {
  if (getenv("OMP_WAIT_POLICY") != NULL || getenv("GOMP_SPINCOUNT") != NULL) return;
  setenv("GOMP_SPINCOUNT", LEANSEG_GOMP_SPINCOUNT, 0);
  setenv("LEANSEG_OPENMP_POLICY", "GOMP_SPINCOUNT=" LEANSEG_GOMP_SPINCOUNT, 1);
}

/* Referenced by the executables so that the linker keeps the library. */
const char* leanseg_openmp_policy(void) { return getenv("LEANSEG_OPENMP_POLICY"); }
