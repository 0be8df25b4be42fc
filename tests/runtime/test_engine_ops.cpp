// Every op of the oneDNN engine against the naive reference interpreter (src/runtime/
// reference.h), on small hand-built graphs; plus the arena planner and the graph rewrites.
#include <cmath>
#include <map>
#include <dnnl.hpp>
#include <random>

#include "concurrent_engines.h"
#include "test_graph.h"
#include "leanseg/error.h"
#include "leanseg/runtime.h"
#include "runtime/arena.h"
#include "runtime/calibrate.h"
#include "runtime/graph_rewrite.h"
#include "runtime/reference.h"
#include "runtime/winograd.h"
#include "test_util.h"

namespace leanseg::runtime {
namespace {

// A U-Net decoder stage in small: a concat of two maps read by a 3x3 conv and by a 1x1
// residual projection, then a 1x1 head.
RuntimeModel concat_read_by_two_convs(int64_t side) {
  TestGraph t(16, side, side);
  auto a = t.node("Relu", "a", {t.conv("ca", "image", 16, 16, 3)});
  auto b = t.node("Relu", "b", {t.conv("cb", a, 16, 16, 3)});
  auto cat = t.node("Concat", "cat", {a, b}, {Attr::of("axis", int64_t{1})});
  auto body = t.node("Relu", "body_relu", {t.conv("body", cat, 32, 16, 3)});
  auto y = t.node("Add", "residual", {body, t.conv("proj", cat, 32, 16, 1)});
  return t.finish(t.conv("head", y, 16, 1, 1));
}

// The threading contract on a hand-built decoder stage (no LibTorch: scripts/test_tsan.sh runs
// this under ThreadSanitizer): fp32 with and without Winograd, int8, on 1 and 2 threads, two
// engines alternating in one thread and four host threads at once, bit-identical to serial runs.
TEST(EngineOps, ConcurrentEnginesOnOneGraphMatchSerialRunsExactly) {
  RuntimeModel m = concat_read_by_two_convs(64);
  calibrate(&m);
  std::vector<test::EngineJob> jobs = {{&m, {Precision::F32, 1, true}},
                                       {&m, {Precision::F32, 2, false}},
                                       {&m, {Precision::I8, 2, false}},
                                       {&m, {Precision::F32, 2, true}}};
  for (size_t j = 0; j < jobs.size(); ++j) jobs[j].input = random_input(16 * 64 * 64, static_cast<uint32_t>(20 + j));
  test::expect_concurrent_runs_match_serial(jobs);
}

TEST(EngineOps, ConvWithGroupsDilationStrideAndFusedReluSixAndResidual) {
  TestGraph t(4, 16, 16);
  auto y = t.conv("c1", "image", 4, 8, 3, 1, 2, 2);             // grouped, dilated
  auto hs = t.node("HardSigmoid", "r6/hs", {y}, {Attr::of("alpha", 1.0f / 6.0f), Attr::of("beta", 0.0f)});
  y = t.node("Mul", "r6", {hs, t.scalar("six", 6.0f)});            // ReLU6 → fused clip
  auto dw = t.conv("dw", y, 8, 8, 3, 1, 8);                       // depthwise
  auto pw = t.conv("pw", dw, 8, 8, 1, 1, 1, 1, false);            // no bias
  y = t.node("Add", "res", {y, pw});                               // residual → sum post-op
  y = t.node("Relu", "res_relu", {y});
  y = t.conv("down", y, 8, 4, 3, 2);                               // strided
  y = t.node("ConvTranspose", "up", {y, t.constant("up.weight", {4, 1, 2, 2}), t.constant("up.bias", {1})},
             {Attr::of("kernel_shape", Ints{2, 2}), Attr::of("strides", Ints{2, 2}), Attr::of("pads", Ints{0, 0, 0, 0})});
  EXPECT_LT(engine_vs_reference(t.finish(y)), 1e-4);
}

// A concat read only by a dense conv runs as one conv per input accumulating into the output:
// same result, and the concat's buffer never exists. Three 16-channel inputs, a ReLU fused after
// the last part, and in int8 each part quantized with its own input's calibration.
TEST(EngineOps, ConvOverAConcatRunsInPartsWithoutTheConcatBuffer) {
  auto build = [](bool conv_reads_concat) {
    TestGraph t(16, 32, 32);
    auto a = t.node("Relu", "a", {t.conv("ca", "image", 16, 16, 3)});
    auto b = t.conv("cb", a, 16, 16, 3);
    auto c = t.conv("cc", b, 16, 16, 1);
    auto cat = t.node("Concat", "cat", {a, b, c}, {Attr::of("axis", int64_t{1})});
    auto y = conv_reads_concat ? t.conv("fuse", cat, 48, 16, 3) : t.node("Relu", "cat_relu", {cat});
    if (conv_reads_concat) y = t.node("Relu", "fuse_relu", {y});
    y = t.conv("head", y, conv_reads_concat ? 16 : 48, 1, 1);
    return t.finish(y);
  };
  const RuntimeModel split = build(true);
  EXPECT_LT(engine_vs_reference(split), 1e-4);
  // Three 16-channel maps alive with the output, never a 48-channel concat beside them (plus the
  // direct kernels' few-KB scratchpads, which the arena holds too) ...
  const size_t map16 = 32 * 32 * 16 * sizeof(float);
  EXPECT_LE(Engine::from_model(split, {Precision::F32, 1, false}).arena_bytes(), 4 * map16 + map16 / 4);
  EXPECT_GE(Engine::from_model(build(false), {Precision::F32, 1, false}).arena_bytes(), 6 * map16);
  // ... and on the Winograd kernel, which reads the three parts in one step, the same maps plus
  // its scratch.
  const Engine winograd = Engine::from_model(split, {Precision::F32, 1, true});
  ASSERT_EQ(winograd.winograd_layers(), 3u);
  WinogradShape fuse;
  fuse.height = fuse.width = 32, fuse.in_channels = 48, fuse.out_channels = 16, fuse.threads = 1;
  EXPECT_LE(winograd.arena_bytes(), 4 * map16 + winograd_scratch_bytes(fuse) + map16 / 4);
  double logit_range = 0;
  const double error = engine_vs_reference(split, Precision::F32, true, &logit_range);
  EXPECT_LT(error, 1e-5 * logit_range);
  RuntimeModel q = split;
  const std::vector<PlainTensor> inputs = calibrate(&q);
  const auto ref = run_reference(q.graph, {{"image", inputs[0]}}).at("logits");
  double range = *std::max_element(ref.f32.begin(), ref.f32.end()) - *std::min_element(ref.f32.begin(), ref.f32.end());
  EXPECT_LT(engine_vs_reference(q, Precision::I8), 0.05 * range);
}

// A decoder block's concat is read by two convs (its first 3×3 conv and the residual 1×1
// projection). fp32: both run in parts, so the 32-channel concat is never built; int8: it is
// built once, directly in u8 by one quantizing reorder per input into its channel slice (no
// f32 concat, no quantizing copy of it).
TEST(EngineOps, ConcatReadByTwoConvsRunsInPartsOrIsBuiltInInt8) {
  const RuntimeModel m = concat_read_by_two_convs(32);
  EXPECT_LT(engine_vs_reference(m), 1e-4);
  // a, b, body and proj's outputs alive at once (and small scratchpads), never a 32-channel map.
  const size_t map16 = 32 * 32 * 16 * sizeof(float);
  EXPECT_LE(Engine::from_model(m, {Precision::F32, 1, false}).arena_bytes(), 4 * map16 + map16 / 4);
  double range = 0;
  const double winograd_error = engine_vs_reference(m, Precision::F32, true, &range);
  EXPECT_EQ(Engine::from_model(m, {Precision::F32, 1, true}).winograd_layers(), 3u);
  EXPECT_LT(winograd_error, 1e-5 * range);

  RuntimeModel q = m;
  const std::vector<PlainTensor> inputs = calibrate(&q);
  const auto ref = run_reference(q.graph, {{"image", inputs[0]}}).at("logits");
  range = *std::max_element(ref.f32.begin(), ref.f32.end()) - *std::min_element(ref.f32.begin(), ref.f32.end());
  EXPECT_LT(engine_vs_reference(q, Precision::I8), 0.05 * range);
  Engine int8 = Engine::from_model(q, {Precision::I8, 1, false});
  std::vector<StepProfile> profile;
  int8.run_profiled(inputs[0].f32.data(), &profile);
  int quantizing = 0;
  for (const auto& p : profile) {
    EXPECT_NE(p.name, "cat") << "an f32 concat was built";
    EXPECT_NE(p.name, "cat#q8#q8");
    quantizing += p.name == "cat#q8";
  }
  EXPECT_EQ(quantizing, 2);  // one reorder per input
}

// A dilated conv whose off-centre taps all fall in the padding at this size (an ASPP branch of
// rate 12 on an 8x8 map) runs as its centre tap: same result, a ninth of the FLOPs; a rate that
// reaches inside the map (2) keeps its nine taps. int8 too (the zero padding is exact there).
TEST(EngineOps, DilatedConvThatReadsOnlyPaddingOffCentreRunsAsItsCentreTap) {
  TestGraph t(16, 8, 8);
  auto far = t.node("Relu", "far_relu", {t.conv("far", "image", 16, 32, 3, 1, 1, 12)});
  auto near = t.node("Relu", "near_relu", {t.conv("near", far, 32, 16, 3, 1, 1, 2)});
  RuntimeModel m = t.finish(t.conv("head", near, 16, 1, 1));
  EXPECT_LT(engine_vs_reference(m), 1e-4);
  const double pixels = 8 * 8;
  const double expected = 2 * pixels * (16 * 32 * 1 + 32 * 16 * 9 + 16 * 1);
  EXPECT_DOUBLE_EQ(Engine::from_model(m, {Precision::F32, 1, false}).flops(), expected);
  const std::vector<PlainTensor> inputs = calibrate(&m);
  double range = 0;
  const double int8_error = engine_vs_reference(m, Precision::I8, false, &range);
  EXPECT_LT(int8_error, 0.05 * range);
  // Planned again at 16x16, rate 12 reaches into the map: all nine taps run.
  Engine larger = Engine::from_model(m, {Precision::F32, 1, false});
  larger.set_input_size(16, 16);
  EXPECT_DOUBLE_EQ(larger.flops(), 2 * 256.0 * (16 * 32 * 9 + 32 * 16 * 9 + 16 * 1));
}

// Without VNNI oneDNN's int8 3x3 convs are slower than the fp32 Winograd kernel, so an int8 plan
// keeps the Winograd convs in fp32 there (with VNNI: none). A concat read by a Winograd conv and
// a 1x1 int8 conv then runs in parts (f32 parts for Winograd, quantized copies for the 1x1).
TEST(EngineOps, Int8PlanKeepsWinogradConvsInFp32OnlyWithoutVnni) {
  RuntimeModel m = concat_read_by_two_convs(64);
  const std::vector<PlainTensor> inputs = calibrate(&m);
  Engine int8 = Engine::from_model(m, {Precision::I8, 1, true});
  const bool vnni = int8_is_exact_on_this_cpu();
  EXPECT_EQ(int8.winograd_layers(), vnni ? 0u : 3u);  // ca, cb, body (ca reads the image)
  double range = 0;
  const double error = engine_vs_reference(m, Precision::I8, true, &range);
  EXPECT_LT(error, 0.05 * range);
  std::vector<StepProfile> profile;
  int8.run_profiled(inputs[0].f32.data(), &profile);
  int built_concats = 0, quantized_parts = 0;
  for (const auto& p : profile) {
    built_concats += p.name == "cat" || p.name == "cat#q8";
    quantized_parts += p.name == "a#q8" || p.name == "b#q8";
  }
  EXPECT_EQ(built_concats, vnni ? 2 : 0);  // with VNNI: the u8 concat, one reorder per input
  // Without VNNI: a quantized copy of each part for the 1x1 proj. With VNNI: a's copy for cb
  // only (b reaches the int8 convs through the u8 concat).
  EXPECT_EQ(quantized_parts, vnni ? 1 : 2);
}

// Scratchpads are planned in the arena for the one step that uses them. The Winograd kernel's
// (transformed weights and tiles) is larger than a map here; it fits in the bytes of a wide map
// that died before the Winograd conv runs, so the arena does not grow by it.
TEST(EngineOps, WinogradScratchSharesTheArenaWithDeadActivations) {
  TestGraph t(16, 64, 64);
  auto wide = t.node("Relu", "wide_relu", {t.conv("wide", "image", 16, 256, 1)});  // 4 MB, dies next
  auto narrow = t.conv("narrow", wide, 256, 64, 1);
  auto y = t.node("Relu", "wino_relu", {t.conv("wino", narrow, 64, 128, 3)});
  const RuntimeModel m = t.finish(t.conv("head", y, 128, 1, 1));
  double range = 0;  // Winograd's rounding differs from direct summation's: relative to the range
  const double error = engine_vs_reference(m, Precision::F32, true, &range);
  EXPECT_LT(error, 1e-5 * range);
  const Engine direct = Engine::from_model(m, {Precision::F32, 1, false});
  Engine winograd = Engine::from_model(m, {Precision::F32, 1, true});
  EXPECT_EQ(direct.winograd_layers(), 0u);
  EXPECT_EQ(winograd.winograd_layers(), 1u);
  WinogradShape s;
  s.height = s.width = 64, s.in_channels = 64, s.out_channels = 128, s.threads = 1;
  const size_t map64 = 64 * 64 * 64 * sizeof(float);
  ASSERT_GT(winograd_scratch_bytes(s), map64);
  ASSERT_LT(winograd_scratch_bytes(s) + 3 * map64, 5 * map64);  // fits beside the live maps
  EXPECT_EQ(winograd.arena_bytes(), direct.arena_bytes());
  // Two runs on other inputs: the scratch overwrote nothing still needed.
  const auto input = random_input(16 * 64 * 64, 9);
  const std::vector<float> first = winograd.run(input.data());
  winograd.run(random_input(16 * 64 * 64, 10).data());
  EXPECT_EQ(winograd.run(input.data()), first);
}

// A profiled run gives the plain run's result and one timed entry per step, named by node and
// by what ran it.
TEST(EngineOps, ProfiledRunTimesEveryStepAndGivesTheSameResult) {
  TestGraph t(16, 64, 64);
  auto y = t.node("Relu", "wino_relu", {t.conv("wino", "image", 16, 16, 3)});
  y = t.node("MaxPool", "pool", {y}, {Attr::of("kernel_shape", Ints{2, 2}), Attr::of("strides", Ints{2, 2})});
  y = t.node("ConvTranspose", "up", {y, t.constant("up.weight", {16, 1, 2, 2})},
             {Attr::of("kernel_shape", Ints{2, 2}), Attr::of("strides", Ints{2, 2}), Attr::of("group", int64_t{16})});
  Engine e = Engine::from_model(t.finish(t.conv("head", y, 16, 1, 1)), {Precision::F32, 1, true});
  const auto input = random_input(16 * 64 * 64, 4);
  const std::vector<float> plain = e.run(input.data());
  std::vector<StepProfile> profile;
  EXPECT_EQ(e.run_profiled(input.data(), &profile), plain);
  std::map<std::string, std::string> kind_of;
  for (const auto& s : profile) {
    EXPECT_GE(s.ms, 0) << s.name;
    kind_of[s.name] = s.kind;
  }
  EXPECT_EQ(kind_of["wino"], "winograd");
  EXPECT_EQ(kind_of["up"], "depthwise-upsample");
  EXPECT_EQ(kind_of["pool"].rfind("pooling", 0), 0u) << kind_of["pool"];  // oneDNN's primitive and implementation
  EXPECT_TRUE(kind_of.count("head"));
}

// A U-Net decoder stage on the Winograd kernel: the upsampled half (a kernel-2 stride-2 transposed
// conv, which the engine runs as a 1x1 conv to 4C channels and a DepthToSpace) is read by the conv
// straight from the 1x1 conv's output, never rearranged into a map of its own; the result still
// matches the reference, with the residual and ReLU fused.
TEST(EngineOps, WinogradDecoderStageReadsTheUpsampledHalfThroughDepthToSpace) {
  TestGraph t(16, 64, 64);
  auto skip = t.node("Relu", "skip", {t.conv("enc", "image", 16, 16, 3)});
  auto low = t.node("MaxPool", "pool", {skip}, {Attr::of("kernel_shape", Ints{2, 2}), Attr::of("strides", Ints{2, 2})});
  auto up = t.node("ConvTranspose", "up", {low, t.constant("up.weight", {16, 16, 2, 2}), t.constant("up.bias", {16})},
                   {Attr::of("kernel_shape", Ints{2, 2}), Attr::of("strides", Ints{2, 2}), Attr::of("pads", Ints{0, 0, 0, 0})});
  auto cat = t.node("Concat", "cat", {skip, up}, {Attr::of("axis", int64_t{1})});
  auto y = t.conv("dec", cat, 32, 16, 3);
  y = t.node("Relu", "dec_relu", {t.node("Add", "res", {y, skip})});
  const RuntimeModel m = t.finish(t.conv("head", y, 16, 1, 1));
  EXPECT_EQ(Engine::from_model(m, {Precision::F32, 1, true}).winograd_layers(), 2u);
  double range = 0;
  const double error = engine_vs_reference(m, Precision::F32, true, &range);
  EXPECT_LT(error, 1e-5 * range);
  EXPECT_LT(engine_vs_reference(m, Precision::F32, false), 1e-5 * range);
}

TEST(EngineOps, GroupedTransposedConvPoolsConcatAndBroadcasts) {
  TestGraph t(4, 16, 16);
  auto up = t.node("ConvTranspose", "up", {"image", t.constant("up.weight", {4, 1, 2, 2})},
                   {Attr::of("kernel_shape", Ints{2, 2}), Attr::of("strides", Ints{2, 2}), Attr::of("group", int64_t{4})});
  auto down = t.node("MaxPool", "pool", {up}, {Attr::of("kernel_shape", Ints{2, 2}), Attr::of("strides", Ints{2, 2})});
  auto cat = t.node("Concat", "cat", {down, "image"}, {Attr::of("axis", int64_t{1})});  // 8 channels
  auto g = t.node("GlobalAveragePool", "gap", {cat});
  auto s = t.node("Sigmoid", "gate", {t.conv("fc", g, 8, 8, 1)});
  auto y = t.node("Mul", "scale", {cat, s});                                             // SE-style broadcast
  y = t.node("Add", "shift", {y, t.constant("beta", {8, 1, 1})});                        // constant broadcast
  auto ones = t.node("HardSigmoid", "ones", {y}, {Attr::of("alpha", 0.0f), Attr::of("beta", 1.0f)});
  auto b = t.node("Mul", "bcast", {ones, t.conv("p", g, 8, 8, 1)});
  y = t.node("Add", "add_pooled", {y, b});                                               // exporter's broadcast form
  y = t.conv("head", y, 8, 1, 1);
  EXPECT_LT(engine_vs_reference(t.finish(y)), 1e-4);
}

TEST(EngineOps, HostOpsAttentionAndGroupNormRunOnSmallTensors) {
  TestGraph t(8, 4, 4);
  // Linear attention as the exporter writes it, heads 2, d 4.
  auto q = t.node("Reshape", "qh", {t.conv("q", "image", 8, 8, 1), t.ints("qs", {0, 2, 4, -1})});
  auto k = t.node("Reshape", "kh", {t.conv("k", "image", 8, 8, 1), t.ints("ks", {0, 2, 4, -1})});
  auto v = t.node("Reshape", "vh", {t.conv("v", "image", 8, 8, 1), t.ints("vs", {0, 2, 4, -1})});
  const Attr swap = Attr::of("perm", Ints{0, 1, 3, 2}), last = Attr::of("axis", int64_t{-1});
  q = t.node("Softmax", "qsm", {t.node("Transpose", "qt", {q}, {swap})}, {last});
  k = t.node("Softmax", "ksm", {k}, {last});
  auto ctx = t.node("MatMul", "ctx", {k, t.node("Transpose", "vt", {v}, {swap})});
  auto o = t.node("Transpose", "ot", {t.node("MatMul", "att", {q, ctx})}, {swap});
  o = t.node("Reshape", "oimg", {o, t.node("Shape", "shape", {"image"})});
  auto y = t.node("Add", "res", {"image", t.conv("out", o, 8, 8, 1)});
  // GroupNorm on pooled features (2 groups), as the exporter writes it.
  auto p = t.node("GlobalAveragePool", "gap", {y});
  auto gn = t.node("Reshape", "tog", {p, t.ints("gs", {0, 2, 4, 1})});
  gn = t.node("InstanceNormalization", "in", {gn, t.constant("one", {2}, 1, 1), t.constant("zero", {2}, 0, 0)},
              {Attr::of("epsilon", 1e-5f)});
  gn = t.node("Reshape", "toc", {gn, t.ints("cs", {0, 8, 1, 1})});
  gn = t.node("Relu", "gnr", {gn});
  y = t.node("Mul", "m", {y, gn});
  y = t.conv("head", y, 8, 1, 1);
  EXPECT_LT(engine_vs_reference(t.finish(y)), 1e-4);
}

TEST(EngineOps, Bf16StaysCloseToFp32) {
  if (!bf16_is_supported_on_this_cpu()) GTEST_SKIP() << "this CPU has no AVX-512: oneDNN has no bf16 kernels";
  TestGraph t(4, 32, 32);
  auto y = t.node("Relu", "r1", {t.conv("c1", "image", 4, 16, 3)});
  y = t.node("Relu", "r2", {t.conv("c2", y, 16, 16, 3)});
  y = t.conv("head", y, 16, 1, 1);
  const RuntimeModel m = t.finish(y);
  // bf16 keeps 8 bits of mantissa: relative error ~1e-2 of the signal.
  EXPECT_LT(engine_vs_reference(m, Precision::BF16), 0.1);
}

TEST(EngineOps, InputSizeCanChangeAndBadSizesAreRefused) {
  TestGraph t(1, 32, 32);
  const RuntimeModel m = t.finish(t.conv("c", "image", 1, 1, 3));
  Engine e = Engine::from_model(m, {});
  e.set_input_size(64, 96);
  EXPECT_EQ(e.input_height(), 64);
  EXPECT_EQ(e.input_width(), 96);
  const auto input = random_input(64 * 96, 1);
  EXPECT_EQ(e.run(input.data()).size(), 64u * 96u);
  EXPECT_ERROR_CONTAINS(e.set_input_size(50, 64), "not a positive multiple of 4");
  EXPECT_ERROR_CONTAINS(precision_from_name("fp8"), "unknown precision 'fp8'");
}

TEST(EngineOps, RewriteTurnsTheExportersReluSixIntoClip) {
  TestGraph t(1, 32, 32);
  auto hs = t.node("HardSigmoid", "hs", {"image"}, {Attr::of("alpha", 1.0f / 6.0f), Attr::of("beta", 0.0f)});
  t.node("Mul", "r6", {hs, t.scalar("six", 6.0f)});
  const RuntimeModel m = t.finish("r6");
  const auto nodes = simplify_for_engine(m.graph).nodes;
  ASSERT_EQ(nodes.size(), 1u);
  EXPECT_EQ(nodes[0].op, "Clip");
  EXPECT_EQ(nodes[0].inputs, std::vector<std::string>{"image"});
}

TEST(Arena, BuffersShareBytesOnlyWhenTheirLifetimesDoNotOverlap) {
  // a: steps 0-1, b: 1-2 (overlaps a), c: 2-3 (overlaps b, not a) → c reuses a's bytes.
  const std::vector<ArenaRequest> r = {{1000, 0, 1}, {500, 1, 2}, {1000, 2, 3}};
  const ArenaPlan p = plan_arena(r, 64);
  auto disjoint = [&](size_t i, size_t j) {
    return p.offsets[i] + r[i].bytes <= p.offsets[j] || p.offsets[j] + r[j].bytes <= p.offsets[i];
  };
  EXPECT_TRUE(disjoint(0, 1));
  EXPECT_TRUE(disjoint(1, 2));
  EXPECT_EQ(p.offsets[0], p.offsets[2]);
  EXPECT_EQ(p.total_bytes, 1024u + 512u);
  for (size_t o : p.offsets) EXPECT_EQ(o % 64, 0u);
}

}  // namespace
}  // namespace leanseg::runtime
