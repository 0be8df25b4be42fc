/* How leanseg's executables make libgomp's idle threads wait (openmp_wait_policy.c): sleep at
 * once. Chosen by bench/spin_sweep.sh (docs/results.md, "latency under load"): of libgomp's default
 * (GOMP_SPINCOUNT 300000), spin bounds of 100000 to 1000 and passive, only passive kept M1's
 * fp32 and int8 medians within 2x of idle under every load of bench/under_load.sh, on two
 * machines. The setting is one NAME=value environment entry. */
#pragma once
#define LEANSEG_OPENMP_WAIT_NAME "OMP_WAIT_POLICY"
#define LEANSEG_OPENMP_WAIT_VALUE "passive"
#define LEANSEG_OPENMP_WAIT_SETTING LEANSEG_OPENMP_WAIT_NAME "=" LEANSEG_OPENMP_WAIT_VALUE
