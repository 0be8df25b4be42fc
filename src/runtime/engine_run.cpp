// Execution of a plan, step by step, timed per step when profiled.
#include <chrono>
#include <dnnl_debug.h>

#include "engine_impl.h"
#include "kernels.h"
#include "reference.h"
#include "winograd.h"

namespace leanseg::runtime {

namespace {

// What runs a step, for profiles: oneDNN's primitive kind and implementation for primitives
// ("convolution brgconv:avx512_core").
std::string step_kind(const Step& s) {
  switch (s.kind) {
    case Step::Kind::Winograd: return "winograd";
    case Step::Kind::Upsample: return "depthwise-upsample";
    case Step::Kind::Host: return s.node ? "host:" + s.node->op : "host-copy";
    case Step::Kind::Primitive: break;
  }
  const char* impl = nullptr;
  dnnl_primitive_desc_query(s.primitive.get_primitive_desc(), dnnl_query_impl_info_str, 0, &impl);
  return std::string(dnnl_prim_kind2str(static_cast<dnnl_primitive_kind_t>(s.primitive.get_kind()))) + " " +
         (impl ? impl : "?");
}

}  // namespace

void Engine::Impl::run(const float* input, std::vector<StepProfile>* profile) {
  const ScopedOmpThreads omp_threads(thread_count());
  input_user.set_data_handle(const_cast<float*>(input));
  if (profile) profile->clear();
  for (auto& s : steps) {
    if (!profile) {
      run_step(s);
      continue;
    }
    profile->push_back({s.name, step_kind(s), 0});
    const auto start = std::chrono::steady_clock::now();
    run_step(s);
    stream.wait();
    profile->back().ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  }
  if (values[output_value].host) {
    std::copy(values[output_value].tensor.f32.begin(), values[output_value].tensor.f32.end(), output.begin());
  } else {
    dnnl::reorder(values[output_value].mem, output_user).execute(stream, values[output_value].mem, output_user);
  }
  stream.wait();
}

void Engine::Impl::run_step(Step& s) {
  if (s.kind == Step::Kind::Primitive) {
    s.primitive.execute(stream, s.args);
    return;
  }
  Value& out = values[s.output];
  if (s.kind == Step::Kind::Winograd) {
    winograd_conv3x3(s.winograd, s.winograd_sources.data(), static_cast<int>(s.winograd_sources.size()),
                     s.weights.data(), s.bias.empty() ? nullptr : s.bias.data(),
                     static_cast<float*>(out.mem.get_data_handle()), s.scratch);
    return;
  }
  if (s.kind == Step::Kind::Upsample) {
    const Value& in = values[s.inputs[0]];
    depthwise_upsample2x(static_cast<const float*>(in.mem.get_data_handle()), static_cast<float*>(out.mem.get_data_handle()),
                         s.weights.data(), s.bias.empty() ? nullptr : s.bias.data(), in.dims[2], in.dims[3], in.dims[1]);
    return;
  }
  if (s.node == nullptr) {  // a copy between the arena and a host tensor
    Value& in = values[s.inputs[0]];
    memory host({in.dims, dt::f32, tag::nchw}, cpu, in.tensor.f32.data());
    if (!in.host) dnnl::reorder(in.mem, host).execute(stream, in.mem, host);  // arena → host mirror
    else dnnl::reorder(host, out.mem).execute(stream, host, out.mem);         // host → arena
    return;
  }
  std::vector<const PlainTensor*> ins;
  for (int v : s.inputs) ins.push_back(&values[v].tensor);
  out.tensor = std::move(reference_op(*s.node, ins)[0]);
}

}  // namespace leanseg::runtime
