// The C API (runtime_c.h) over runtime::Engine: every entry point catches everything, because
// an exception unwinding into C (or into a foreign-function interface) is undefined behaviour.
#include "leanseg/runtime_c.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <string>

#include "leanseg/error.h"
#include "leanseg/runtime.h"
#include "leanseg/safetensors.h"

struct ls_engine {
  leanseg::runtime::Engine engine;
};

namespace {

using leanseg::Error;
using leanseg::runtime::Engine;

void set_error(char* err, size_t err_len, const std::string& message) {
  if (err == nullptr || err_len == 0) return;
  const size_t n = std::min(message.size(), err_len - 1);
  std::memcpy(err, message.data(), n);
  err[n] = '\0';
}

void clear_error(char* err, size_t err_len) { set_error(err, err_len, ""); }

// Runs `body`, turning any exception into a message in err and a non-zero return.
template <class F>
int guarded(char* err, size_t err_len, F&& body) {
  try {
    clear_error(err, err_len);
    body();
    return 0;
  } catch (const std::bad_alloc&) {
    set_error(err, err_len, "out of memory");
  } catch (const std::exception& e) {
    set_error(err, err_len, e.what());
  } catch (...) {
    set_error(err, err_len, "unknown error");
  }
  return 1;
}

void require_engine(const ls_engine* engine, const char* function) {
  leanseg::require(engine != nullptr, std::string(function) + ": engine is NULL");
}

void require_buffers(const float* input, const float* output, const char* function) {
  leanseg::require(input != nullptr, std::string(function) + ": input is NULL");
  leanseg::require(output != nullptr, std::string(function) + ": output is NULL");
}

// Engine errors about the graph do not know the file they came from: name it.
std::string with_path(const std::string& message, const std::string& path) {
  if (message.find(path) != std::string::npos) return message;
  return "runtime model '" + path + "': " + message;
}

// Logits of `images` images, each channels × pixels (planar) → sigmoid of one channel, softmax
// over several.
void probabilities_in_place(float* x, size_t images, int channels, size_t pixels) {
  if (channels == 1) {
    std::transform(x, x + images * pixels, x, [](float v) { return 1.f / (1.f + std::exp(-v)); });
    return;
  }
  for (size_t n = 0; n < images; ++n, x += static_cast<size_t>(channels) * pixels)
    for (size_t i = 0; i < pixels; ++i) {
      float highest = x[i], sum = 0;
      for (int c = 1; c < channels; ++c) highest = std::max(highest, x[c * pixels + i]);
      for (int c = 0; c < channels; ++c) sum += x[c * pixels + i] = std::exp(x[c * pixels + i] - highest);
      for (int c = 0; c < channels; ++c) x[c * pixels + i] /= sum;
    }
}

size_t pixels_of(const ls_engine* engine) {
  return static_cast<size_t>(engine->engine.input_height()) * engine->engine.input_width();
}

// The C functions write K x H x W values per image into the caller's buffer (K =
// ls_engine_output_channels): a graph computing anything else (built elsewhere; not one of
// leanseg's segmentation models, e.g. an output at another size) is refused before it could
// write past that buffer.
void require_k_logits_per_pixel(const leanseg::runtime::Engine& engine, const char* function) {
  const auto shape = engine.output_shape();
  const std::vector<int64_t> expected = {1, engine.output_channels(), engine.input_height(), engine.input_width()};
  leanseg::require(shape == expected, std::string(function) + ": the model's output is " + leanseg::shape_str(shape) +
                                          ", not K logits per input pixel " + leanseg::shape_str(expected));
}

const std::vector<float>& run_checked(ls_engine* engine, const float* input, float* out, const char* function) {
  require_engine(engine, function);
  require_buffers(input, out, function);
  require_k_logits_per_pixel(engine->engine, function);
  return engine->engine.run(input);
}

}  // namespace

extern "C" {

ls_engine* ls_engine_load(const char* path, const char* precision, int threads, char* err, size_t err_len) {
  return ls_engine_load_flags(path, precision, threads, 0u, err, err_len);
}

ls_engine* ls_engine_load_flags(const char* path, const char* precision, int threads, unsigned flags, char* err,
                                size_t err_len) {
  ls_engine* result = nullptr;
  guarded(err, err_len, [&] {
    leanseg::require(path != nullptr, "ls_engine_load: path is NULL");
    leanseg::require(threads >= 0, "ls_engine_load: threads must be >= 0 (0: every core), got " + std::to_string(threads));
    const unsigned known = LS_ENGINE_WINOGRAD | LS_ENGINE_DIRECT_CONVS | LS_ENGINE_FIXED_THREADS;
    leanseg::require((flags & ~known) == 0u, "ls_engine_load_flags: unknown option bits " + std::to_string(flags & ~known));
    const unsigned convs = LS_ENGINE_WINOGRAD | LS_ENGINE_DIRECT_CONVS;
    leanseg::require((flags & convs) != convs, "ls_engine_load_flags: LS_ENGINE_WINOGRAD and LS_ENGINE_DIRECT_CONVS exclude each other");
    leanseg::runtime::EngineOptions options;
    options.precision = leanseg::runtime::precision_from_name(precision ? precision : "fp32");
    options.threads = threads;
    if (flags & LS_ENGINE_WINOGRAD) options.winograd = true;  // no flag: where it pays on this CPU
    if (flags & LS_ENGINE_DIRECT_CONVS) options.winograd = false;
    if (flags & LS_ENGINE_FIXED_THREADS) options.adapt_threads = false;
    try {
      result = new ls_engine{Engine::load(path, options)};
    } catch (const Error& e) {
      throw Error(with_path(e.what(), path));
    }
  });
  return result;
}

int ls_engine_set_input_size(ls_engine* engine, int height, int width, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    require_engine(engine, "ls_engine_set_input_size");
    engine->engine.set_input_size(height, width);
  });
}

int ls_engine_input_channels(const ls_engine* engine) { return engine ? engine->engine.input_channels() : -1; }
int ls_engine_input_height(const ls_engine* engine) { return engine ? engine->engine.input_height() : -1; }
int ls_engine_input_width(const ls_engine* engine) { return engine ? engine->engine.input_width() : -1; }
int ls_engine_output_channels(const ls_engine* engine) { return engine ? engine->engine.output_channels() : -1; }

int ls_engine_run(ls_engine* engine, const float* input, float* logits_out, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    const auto& logits = run_checked(engine, input, logits_out, "ls_engine_run");
    std::copy(logits.begin(), logits.end(), logits_out);
  });
}

int ls_engine_probabilities(ls_engine* engine, const float* input, float* prob_out, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    const auto& logits = run_checked(engine, input, prob_out, "ls_engine_probabilities");
    std::copy(logits.begin(), logits.end(), prob_out);
    probabilities_in_place(prob_out, 1, engine->engine.output_channels(), pixels_of(engine));
  });
}

int ls_engine_labels(ls_engine* engine, const float* input, unsigned char* labels_out, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    require_engine(engine, "ls_engine_labels");
    leanseg::require(input != nullptr, "ls_engine_labels: input is NULL");
    leanseg::require(labels_out != nullptr, "ls_engine_labels: output is NULL");
    engine->engine.run_labels(input, labels_out);
  });
}

int ls_engine_run_batch(ls_engine* engine, const float* input, int count, float* logits_out, char* err, size_t err_len) {
  return guarded(err, err_len, [&] {
    require_engine(engine, "ls_engine_run_batch");
    require_buffers(input, logits_out, "ls_engine_run_batch");
    require_k_logits_per_pixel(engine->engine, "ls_engine_run_batch");
    engine->engine.run_batch(input, count, logits_out);
  });
}

int ls_engine_probabilities_batch(ls_engine* engine, const float* input, int count, float* prob_out, char* err,
                                  size_t err_len) {
  return guarded(err, err_len, [&] {
    require_engine(engine, "ls_engine_probabilities_batch");
    require_buffers(input, prob_out, "ls_engine_probabilities_batch");
    require_k_logits_per_pixel(engine->engine, "ls_engine_probabilities_batch");
    engine->engine.run_batch(input, count, prob_out);
    probabilities_in_place(prob_out, static_cast<size_t>(std::max(count, 0)), engine->engine.output_channels(),
                           pixels_of(engine));
  });
}

long ls_engine_preprocessing_json(const ls_engine* engine, char* out, size_t out_len) {
  if (engine == nullptr) return -1;
  try {
    const leanseg::RuntimeModel& m = engine->engine.model();
    const std::string text =
        nlohmann::json{{"preprocessing", m.preprocessing}, {"size_divisor", m.size_divisor}}.dump();
    set_error(out, out_len, text);
    return static_cast<long>(text.size());
  } catch (...) {
    return -1;
  }
}

void ls_engine_free(ls_engine* engine) { delete engine; }

int ls_bf16_is_supported(void) { return leanseg::runtime::bf16_is_supported_on_this_cpu() ? 1 : 0; }

}  // extern "C"
