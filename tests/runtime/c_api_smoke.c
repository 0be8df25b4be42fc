/* The C API (runtime_c.h) used from C, compiled as C: proves the header is valid C and that a
 * C program can load, run and free an engine, and see errors as return values and messages.
 * Usage: leanseg_c_api_smoke MODEL.lsr. Prints every failed check; exit code 0 when all pass.
 * Run by the gtest CApi.SmokeProgramCompiledAsC (test_c_api.cpp). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "leanseg/runtime_c.h"

static int failures = 0;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    if (!(cond)) {                                         \
      ++failures;                                          \
      fprintf(stderr, "FAILED %s:%d: %s: ", __FILE__, __LINE__, #cond); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
    }                                                      \
  } while (0)

/* A deterministic input in roughly the normalised range [-1, 1]. */
static float* make_input(size_t n) {
  float* x = (float*)malloc(n * sizeof(float));
  unsigned state = 12345u;
  size_t i;
  for (i = 0; i < n; ++i) {
    state = state * 1664525u + 1013904223u;
    x[i] = (float)((state >> 8) & 0xFFFF) / 32768.0f - 1.0f;
  }
  return x;
}

static void check_errors_without_engine(const char* path) {
  char err[512];
  ls_engine* e = ls_engine_load("/nonexistent/model.lsr", NULL, 1, err, sizeof err);
  CHECK(e == NULL, "loading a missing file must fail");
  CHECK(strstr(err, "/nonexistent/model.lsr") != NULL, "message should name the file: '%s'", err);

  e = ls_engine_load(path, "fp64", 1, err, sizeof err);
  CHECK(e == NULL, "an unknown precision must fail");
  CHECK(strstr(err, "fp64") != NULL, "message should name the precision: '%s'", err);

  e = ls_engine_load(path, NULL, -1, err, sizeof err);
  CHECK(e == NULL, "negative threads must fail");

  /* A small buffer truncates and stays NUL-terminated; a NULL buffer is allowed. */
  e = ls_engine_load("/nonexistent/model.lsr", NULL, 1, err, 8);
  CHECK(e == NULL && strlen(err) == 7, "truncated message has length %u", (unsigned)strlen(err));
  CHECK(ls_engine_load("/nonexistent/model.lsr", NULL, 1, NULL, 0) == NULL, "NULL err buffer");

  CHECK(ls_engine_input_height(NULL) == -1, "NULL engine height");
  CHECK(ls_engine_run(NULL, NULL, NULL, err, sizeof err) != 0, "run on a NULL engine must fail");
  ls_engine_free(NULL);
}

/* Runs at the current size: logits finite and repeatable, probabilities = sigmoid(logits). */
static void check_run(ls_engine* e) {
  char err[512];
  const int c = ls_engine_input_channels(e), h = ls_engine_input_height(e), w = ls_engine_input_width(e);
  const size_t n = (size_t)h * (size_t)w;
  float* x = make_input((size_t)c * n);
  float* logits = (float*)malloc(n * sizeof(float));
  float* again = (float*)malloc(n * sizeof(float));
  float* prob = (float*)malloc(n * sizeof(float));
  size_t i, bad_finite = 0, bad_sigmoid = 0, differ = 0;

  CHECK(ls_engine_run(e, x, logits, err, sizeof err) == 0, "run %dx%d: %s", h, w, err);
  CHECK(ls_engine_run(e, x, again, err, sizeof err) == 0, "second run: %s", err);
  CHECK(ls_engine_probabilities(e, x, prob, err, sizeof err) == 0, "probabilities: %s", err);
  for (i = 0; i < n; ++i) {
    const double expected = 1.0 / (1.0 + exp(-(double)logits[i]));
    if (!isfinite(logits[i])) ++bad_finite;
    if (!(prob[i] >= 0.0f && prob[i] <= 1.0f) || fabs(prob[i] - expected) > 1e-5) ++bad_sigmoid;
    if (logits[i] != again[i]) ++differ;
  }
  CHECK(bad_finite == 0, "%u non-finite logits", (unsigned)bad_finite);
  CHECK(bad_sigmoid == 0, "%u probabilities differ from sigmoid(logit)", (unsigned)bad_sigmoid);
  CHECK(differ == 0, "%u logits differ between two runs on the same input", (unsigned)differ);
  CHECK(ls_engine_run(e, NULL, logits, err, sizeof err) != 0 && strstr(err, "input") != NULL,
        "NULL input must fail: '%s'", err);
  free(x);
  free(logits);
  free(again);
  free(prob);
}

int main(int argc, char** argv) {
  char err[512];
  ls_engine* e;
  int h, w;
  if (argc != 2) {
    fprintf(stderr, "usage: %s MODEL.lsr\n", argv[0]);
    return 2;
  }
  check_errors_without_engine(argv[1]);

  e = ls_engine_load(argv[1], "fp32", 1, err, sizeof err);
  CHECK(e != NULL, "load %s: %s", argv[1], err);
  if (e == NULL) return 1;
  h = ls_engine_input_height(e);
  w = ls_engine_input_width(e);
  CHECK(ls_engine_input_channels(e) >= 1 && h > 0 && w > 0, "shape %d x %d x %d", ls_engine_input_channels(e), h, w);
  check_run(e);

  CHECK(ls_engine_set_input_size(e, h + 1, w, err, sizeof err) != 0, "a size off the divisor must fail");
  CHECK(strlen(err) > 0, "failed set_input_size leaves a message");
  CHECK(ls_engine_set_input_size(e, 2 * h, w, err, sizeof err) == 0, "set_input_size %dx%d: %s", 2 * h, w, err);
  CHECK(ls_engine_input_height(e) == 2 * h && ls_engine_input_width(e) == w, "size after set_input_size");
  check_run(e);
  ls_engine_free(e);

  if (failures == 0) printf("c api smoke: all checks passed\n");
  return failures == 0 ? 0 : 1;
}
