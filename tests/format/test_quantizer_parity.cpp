// Our RTN quantizer against metal-marlin's own checkpoints: every U32 word and F16 scale of the shared fixtures
// and models, reproduced bit for bit from their BF16 sources (with and without Hadamard rotation).
#include <gtest/gtest.h>

#include <cstring>

#include "format/checkpoint.h"
#include "format/quantizer.h"
#include "format/weight.h"
#include "test_util.h"

using namespace mmfp4;

namespace {

using test::Twin;
using test::kTwins;

class Parity : public ::testing::TestWithParam<Twin> {};

TEST_P(Parity, QuantizerReproducesEveryWordAndScale) {
  const Twin& t = GetParam();
  auto src = Checkpoint::open(test::shared_dir() + "/" + t.src);
  const std::string dst_dir = test::shared_dir() + "/" + t.dst;
  auto dst = Checkpoint::open(dst_dir);
  const QuantConfig qc = QuantConfig::load(dst_dir);
  int checked = 0, rotated = 0;
  for (const TensorInfo* q : dst->tensors()) {
    if (q->dtype != DType::U32) continue;
    const TensorInfo& s = src->get(q->name);
    ASSERT_EQ(s.shape.size(), 2u) << q->name;
    const HostWeight w = load_weight(*dst, q->name, s.shape[0], s.shape[1], qc);
    ASSERT_EQ(w.rotated(), qc.use_hadamard) << q->name;
    const QuantizedMatrix ours =
        quantize_rtn(s.data, s.dtype, s.shape[0], s.shape[1], {w.group_size, w.hadamard_block}, q->name);
    ASSERT_EQ(ours.k_stored, w.k_stored);
    int64_t bad_words = 0, bad_scales = 0;
    for (size_t i = 0; i < ours.codes.size(); ++i) bad_words += ours.codes[i] != w.codes[i];
    for (size_t i = 0; i < ours.scales.size(); ++i) bad_scales += ours.scales[i] != w.scales[i];
    EXPECT_EQ(bad_words, 0) << q->name << ": words differing from metal-marlin's";
    EXPECT_EQ(bad_scales, 0) << q->name << ": scales differing from metal-marlin's";
    ++checked;
    rotated += w.rotated();
  }
  EXPECT_GT(checked, 0);
  std::printf("%s: %d quantized weights reproduced (%d rotated)\n", t.name, checked, rotated);
}

INSTANTIATE_TEST_SUITE_P(Shared, Parity, ::testing::ValuesIn(kTwins),
                         [](const ::testing::TestParamInfo<Twin>& i) { return std::string(i.param.name); });

}  // namespace
