// Which oneDNN kernels this CPU has for half precision (docs/users-data.md, "FP16 inference"): asks oneDNN for a 3x3
// convolution (64 -> 64 channels, 56x56) and a 512x512 matmul with every tensor in f16, in bf16
// and in f32, and prints the implementation oneDNN picks or that it has none. "ref" kernels are
// oneDNN's plain C++ loops (correct, far slower than the JIT ones).
//   usage: probe_onednn_fp16
#include <cstdio>
#include <string>

#include "dnnl.hpp"

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

std::string conv_impl(const dnnl::engine& cpu, dt type) {
  try {
    const dnnl::memory::desc src({1, 64, 56, 56}, type, tag::any), wei({64, 64, 3, 3}, type, tag::any),
        dst({1, 64, 56, 56}, type, tag::any);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, wei,
                                      dst, {1, 1}, {1, 1}, {1, 1});
    return dnnl::convolution_forward::primitive_desc(d, cpu).impl_info_str();
  } catch (const dnnl::error& e) {
    return std::string("none (") + e.what() + ")";
  }
}

std::string matmul_impl(const dnnl::engine& cpu, dt type) {
  try {
    const dnnl::memory::desc a({512, 512}, type, tag::ab), b({512, 512}, type, tag::any), c({512, 512}, type, tag::ab);
    return dnnl::matmul::primitive_desc(dnnl::matmul::desc(a, b, c), cpu).impl_info_str();
  } catch (const dnnl::error& e) {
    return std::string("none (") + e.what() + ")";
  }
}

}  // namespace

int main() {
  const dnnl_version_t* v = dnnl_version();
  std::printf("oneDNN %d.%d.%d, CPU ISA %d (dnnl_cpu_isa_t)\n", v->major, v->minor, v->patch,
              static_cast<int>(dnnl::get_effective_cpu_isa()));
  dnnl::engine cpu(dnnl::engine::kind::cpu, 0);
  for (const auto& [name, type] : {std::pair<const char*, dt>{"f32", dt::f32}, {"bf16", dt::bf16}, {"f16", dt::f16}}) {
    std::printf("%-5s conv 3x3: %s\n", name, conv_impl(cpu, type).c_str());
    std::printf("%-5s matmul:   %s\n", name, matmul_impl(cpu, type).c_str());
  }
  return 0;
}
