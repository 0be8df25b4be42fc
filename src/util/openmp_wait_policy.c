/* How idle OpenMP threads wait in leanseg's own executables (never in a host program that links
 * the runtime library: its environment is its own). Compiled into each executable.
 *
 * Why: libgomp's idle threads spin at every barrier (GOMP_SPINCOUNT 300000 by default, a few
 * ms) before they sleep, and the engine passes ~150 barriers per inference. On 2 cores beside a
 * competing process, how long they spin decides how late the slowest thread arrives: a stream
 * of short-lived niced processes made M1 22-30x slower with endless spinning (2026-12-02,
 * Zen 4), mid-length bounds (30000, 10000) 2.2-4.2x slower on a Zen 1, and libgomp's default
 * 2.9x slower at int8 beside one busy loop there. Sleeping at once (passive) was the only
 * setting within 2x of idle under every load on both machines (docs/results.md, "latency under load";
 * bench/spin_sweep.sh reproduces the table), so it is the default here (openmp_wait_policy.h).
 *
 * Mechanism: libgomp reads its wait policy from the environment once, in its initialiser. No
 * constructor can be ordered before that initialiser reliably (glibc initialises libraries in a
 * depth-first post-order of the load list, and `leanseg`'s LibTorch tree pulls libgomp in along
 * dozens of paths: until 2026-12-03 the setting was never in effect, LD_DEBUG=files and
 * OMP_DISPLAY_ENV=verbose showed it). Setting the variable in the executable's .preinit_array,
 * which runs before every library initialiser, is not enough either: libc's own initialiser then
 * sets environ to the process's original block. So the preinit function adds the variable to a
 * copy of that block and re-executes the program (/proc/self/exe, same arguments) before any
 * library has been initialised: one more dynamic-loader start (`leanseg --help` 0.68 -> 0.90 s,
 * `leanseg-infer` ~1 ms). The re-executed process finds the variable set and goes on. A user's
 * OMP_WAIT_POLICY or GOMP_SPINCOUNT wins; LEANSEG_OPENMP_POLICY tells `leanseg doctor` where the
 * setting came from. If the re-execution fails the program runs on with libgomp's default. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "openmp_wait_policy.h"

static int has_variable(char** envp, const char* prefix) {
  for (char** e = envp; *e != NULL; ++e)
    if (strncmp(*e, prefix, strlen(prefix)) == 0) return 1;
  return 0;
}

static const char* value_of(char** envp, const char* prefix) {
  for (char** e = envp; *e != NULL; ++e)
    if (strncmp(*e, prefix, strlen(prefix)) == 0) return *e + strlen(prefix);
  return NULL;
}

#ifdef LEANSEG_LIBOMP_PATH
/* leanseg-infer runs on LLVM's OpenMP runtime instead of libgomp: preloaded so that it comes first
 * in the lookup order and every GOMP_* and omp_* call, oneDNN's included, binds to it; its threads
 * spin (yielding) up to KMP_BLOCKTIME, 20 ms unless the user sets it, before they sleep. Measured
 * (docs/results.md, "latency under load"; bench/spin_sweep.sh, 3 rounds of 4 loads): beside a stream of
 * short niced processes, niced leanseg processes or niced memory churn M1 stays within 1.1x of
 * idle where libgomp's passive waiting took up to 2x (a sleeping thread woken on a core a niced
 * process holds arrives late at each of ~150 barriers), beside a busy nice-0 process within 2x
 * as ONNX Runtime is, and idle at parity. Not used when the user asks for libgomp
 * (LEANSEG_OPENMP_RUNTIME=libgomp) or tunes it (OMP_WAIT_POLICY, GOMP_SPINCOUNT), nor when the
 * library is missing (the .deb only recommends libomp5-14): then libgomp passive below. The
 * variable LEANSEG_OPENMP_POLICY marks the re-executed process. Returns only if it did not
 * re-execute. */
static void leanseg_use_libomp(char** argv, char** envp, size_t n) {
  const char* want = value_of(envp, "LEANSEG_OPENMP_RUNTIME=");
  if (want != NULL && strcmp(want, "libgomp") == 0) return;
  if (has_variable(envp, "LEANSEG_OPENMP_POLICY=") || has_variable(envp, "OMP_WAIT_POLICY=") ||
      has_variable(envp, "GOMP_SPINCOUNT="))
    return;
  const char* lib = LEANSEG_LIBOMP_PATH;
  if (access(lib, R_OK) != 0) return;
  const char* old = value_of(envp, "LD_PRELOAD=");
  char* preload = malloc(strlen("LD_PRELOAD=") + strlen(lib) + (old ? 1 + strlen(old) : 0) + 1);
  char** env = malloc((n + 5) * sizeof(char*));
  if (preload == NULL || env == NULL) return;
  strcpy(preload, "LD_PRELOAD=");
  strcat(preload, lib);
  if (old != NULL && *old != '\0') strcat(strcat(preload, ":"), old);
  size_t k = 0;
  for (size_t i = 0; i < n; ++i)
    if (strncmp(envp[i], "LD_PRELOAD=", strlen("LD_PRELOAD=")) != 0) env[k++] = envp[i];
  env[k++] = preload;
  /* 20 ms: the blocktime that stayed within 2x of idle beside a busy nice-0 process too (1.9x,
   * where 200 ms took 2.2x) and kept the short-process stream at 1.1-1.3x (bench/spin_sweep.sh). */
  if (!has_variable(envp, "KMP_BLOCKTIME=")) env[k++] = "KMP_BLOCKTIME=20";
  /* Spinning threads do not call sched_yield unless the team has more threads than cores: a
   * yield hands the core to whatever else is runnable, a niced process included, and the
   * engine's other thread then waits at the next barrier. Measured on a Zen 5 (2026-12-07,
   * bench/under_load.sh with ENGINE_B_ENV=KMP_USE_YIELD=0, 3 rounds): beside niced loads the
   * threads' time waiting for a core fell from 2-12 % to 0-1 % and M1 from up to 1.70x to at most
   * 1.29x of idle; a busy nice-0 process is the engine's thread adaptation's case (runtime.h). */
  if (!has_variable(envp, "KMP_USE_YIELD=")) env[k++] = "KMP_USE_YIELD=2";
  env[k++] = "LEANSEG_OPENMP_POLICY=libomp";
  env[k] = NULL;
  execve("/proc/self/exe", argv, env);
  free(env); /* the re-execution failed: run on with libgomp */
  free(preload);
}
#endif

/* Runs before libc's initialiser, so environ and getenv are not usable yet: the process's
 * original environment block is envp. */
static void leanseg_bound_openmp_spinning(int argc, char** argv, char** envp) {
  (void)argc;
  if (envp == NULL) return;
#ifdef LEANSEG_LIBOMP_PATH
  {
    size_t count = 0;
    while (envp[count] != NULL) ++count;
    leanseg_use_libomp(argv, envp, count);
    const char* policy = value_of(envp, "LEANSEG_OPENMP_POLICY=");
    if (policy != NULL && strcmp(policy, "libomp") == 0) return; /* re-executed: libomp's own waiting */
  }
#endif
  if (has_variable(envp, "OMP_WAIT_POLICY=") || has_variable(envp, "GOMP_SPINCOUNT=")) return;
  size_t n = 0;
  while (envp[n] != NULL) ++n;
  char** bounded = malloc((n + 3) * sizeof(char*));
  if (bounded == NULL) return;
  memcpy(bounded, envp, n * sizeof(char*));
  bounded[n] = LEANSEG_OPENMP_WAIT_SETTING;
  bounded[n + 1] = "LEANSEG_OPENMP_POLICY=" LEANSEG_OPENMP_WAIT_SETTING;
  bounded[n + 2] = NULL;
  execve("/proc/self/exe", argv, bounded);
  free(bounded); /* the re-execution failed: run on with libgomp's default */
}

__attribute__((section(".preinit_array"), used)) static void (*const leanseg_openmp_policy_preinit)(int, char**, char**) =
    leanseg_bound_openmp_spinning;
