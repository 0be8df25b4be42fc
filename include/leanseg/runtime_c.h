/* leanseg's LibTorch-free inference engine (runtime.h) as a plain C API, for embedding from C
 * and from other languages' foreign-function interfaces (Python ctypes, Rust, Go, Java...).
 *
 * - ls_engine is opaque; one engine must not be used from two threads at once (the C++ engine
 *   reuses one activation arena), but different engines are independent.
 * - Functions returning int return 0 on success and non-zero on failure. On failure the
 *   message (which names the file or argument at fault) is copied into `err` (truncated to
 *   err_len - 1 bytes, always NUL-terminated); `err` may be NULL when err_len is 0.
 * - No C++ exception ever crosses this boundary.
 * - Input: C x H x W floats, planar, batch 1, already normalised as the model's preprocessing
 *   says ((x / max - mean) / std); H and W as last set (the file's input size after loading).
 *   Output: H x W floats. Link with leanseg_runtime (C++: link with a C++ linker or libstdc++). */
#ifndef LEANSEG_RUNTIME_C_H
#define LEANSEG_RUNTIME_C_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ls_engine ls_engine;

/* Loads and validates a .lsr file. precision: "fp32", "bf16", "int8" or NULL (fp32).
 * threads: 0 for every core. Returns NULL on failure (message in err). */
ls_engine* ls_engine_load(const char* path, const char* precision, int threads, char* err, size_t err_len);

/* Option bits for ls_engine_load_flags. */
#define LS_ENGINE_WINOGRAD 1u     /* fp32: Winograd kernel for 3x3 convs on large maps, on any CPU (no flag: where it pays: AVX-512 or AVX2 + FMA) */
#define LS_ENGINE_DIRECT_CONVS 2u /* fp32: oneDNN's direct convolutions everywhere (no Winograd) */
#define LS_ENGINE_FIXED_THREADS 4u /* always `threads` threads (no flag: half of them while other processes hold the cores; runtime.h, EngineOptions::adapt_threads) */

/* As ls_engine_load, with option bits (LS_ENGINE_*; unknown bits are an error). */
ls_engine* ls_engine_load_flags(const char* path, const char* precision, int threads, unsigned flags, char* err,
                                size_t err_len);

/* Re-plans for another input size (positive multiples of the model's size divisor). */
int ls_engine_set_input_size(ls_engine* engine, int height, int width, char* err, size_t err_len);

/* The current input shape; -1 when engine is NULL. */
int ls_engine_input_channels(const ls_engine* engine);
int ls_engine_input_height(const ls_engine* engine);
int ls_engine_input_width(const ls_engine* engine);

/* Channels K of the logits: 1 for binary models, the number of classes for multi-class ones. */
int ls_engine_output_channels(const ls_engine* engine);

/* Runs the model on `input` and copies the K x H x W logits (planar) into logits_out. */
int ls_engine_run(ls_engine* engine, const float* input, float* logits_out, char* err, size_t err_len);

/* As ls_engine_run, with probabilities in prob_out: the foreground probability (sigmoid) of a
 * binary model, the K class probabilities (softmax over the channels) of a multi-class one. */
int ls_engine_probabilities(ls_engine* engine, const float* input, float* prob_out, char* err, size_t err_len);

/* Runs the model and writes H x W labels: the most probable class (argmax) of a multi-class
 * model, 0/1 (probability > 0.5) of a binary one. */
int ls_engine_labels(ls_engine* engine, const float* input, unsigned char* labels_out, char* err, size_t err_len);

/* Batch: count images (count x C x H x W floats) one after another through the engine's plan;
 * count x K x H x W logits (ls_engine_run_batch) or probabilities (ls_engine_probabilities_batch). */
int ls_engine_run_batch(ls_engine* engine, const float* input, int count, float* logits_out, char* err, size_t err_len);
int ls_engine_probabilities_batch(ls_engine* engine, const float* input, int count, float* prob_out, char* err,
                                  size_t err_len);

/* The model's input pipeline as JSON: {"preprocessing": {...}, "size_divisor": N}
 * (preprocessing.h's fields: channels, intensity, max_value, mean, std, input size, mode,
 * threshold). Copies it into out (NUL-terminated, truncated to out_len - 1) and returns its
 * full length in bytes, so a first call with out_len 0 gives the size; -1 when engine is NULL. */
long ls_engine_preprocessing_json(const ls_engine* engine, char* out, size_t out_len);

/* Frees the engine; NULL is allowed. */
void ls_engine_free(ls_engine* engine);

/* 1 when this CPU can run the "bf16" precision (oneDNN needs AVX-512 for it), else 0. */
int ls_bf16_is_supported(void);

#ifdef __cplusplus
}
#endif

#endif /* LEANSEG_RUNTIME_C_H */
