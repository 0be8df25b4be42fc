// bf16 mixed precision (leanseg/train.h: Bf16Autocast) over LibTorch's CPU autocast.
#include <ATen/autocast_mode.h>

#include "leanseg/train.h"

namespace leanseg {

Bf16Autocast::Bf16Autocast(bool enabled) : enabled_(enabled) {
  if (!enabled_) return;
  was_enabled_ = at::autocast::is_cpu_enabled();
  was_dtype_ = static_cast<int>(at::autocast::get_autocast_cpu_dtype());
  at::autocast::set_cpu_enabled(true);
  at::autocast::set_autocast_cpu_dtype(at::kBFloat16);
  at::autocast::increment_nesting();
}

Bf16Autocast::~Bf16Autocast() {
  if (!enabled_) return;
  // The weight casts autocast caches live until the outermost scope ends, as in torch.autocast.
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_cpu_enabled(was_enabled_);
  at::autocast::set_autocast_cpu_dtype(static_cast<at::ScalarType>(was_dtype_));
}

bool bf16_trains_fast_on_this_cpu() { return __builtin_cpu_supports("avx512bf16"); }

}  // namespace leanseg
