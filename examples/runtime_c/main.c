/* Loads a .lsr model through the runtime's C API and runs a batch of two inputs.
 * Build against an installed leanseg with pkg-config:
 *   cc main.c -o example_runtime_c $(pkg-config --cflags --libs leanseg-runtime) -lm */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "leanseg/runtime_c.h"

int main(int argc, char** argv) {
  char err[1024];
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL.lsr\n", argv[0]);
    return 2;
  }
  ls_engine* engine = ls_engine_load(argv[1], "fp32", 2, err, sizeof err);
  if (engine == NULL) {
    fprintf(stderr, "example_runtime_c: %s\n", err);
    return 1;
  }
  const int c = ls_engine_input_channels(engine), h = ls_engine_input_height(engine), w = ls_engine_input_width(engine);
  const size_t n = (size_t)c * h * w;
  float* x = calloc(2 * n, sizeof *x);
  float* prob = malloc(2 * (size_t)h * w * sizeof *prob);
  for (size_t i = 0; i < 2 * n; ++i) x[i] = (float)sin(0.01 * (double)i);
  int rc = ls_engine_probabilities_batch(engine, x, 2, prob, err, sizeof err);
  if (rc == 0) {
    int in_range = 1;
    for (size_t i = 0; i < 2 * (size_t)h * w; ++i) in_range &= prob[i] >= 0.f && prob[i] <= 1.f;
    printf("example_runtime_c: batch of 2 at %dx%d, probabilities in [0, 1]: %s\n", h, w, in_range ? "yes" : "no");
    rc = in_range ? 0 : 1;
  } else {
    fprintf(stderr, "example_runtime_c: %s\n", err);
  }
  free(x);
  free(prob);
  ls_engine_free(engine);
  return rc;
}
