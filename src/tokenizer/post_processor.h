// Post-processors of tokenizer.json ("post_processor"): add the special tokens around an encoded sequence when
// add_special_tokens is on. Supported: TemplateProcessing (single-sequence template), BertProcessing,
// RobertaProcessing, ByteLevel (offsets only: nothing to do for ids) and Sequence. Any other type is an error at
// load that names it.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/json.h"

namespace mmfp4 {

class PostProcessor {
 public:
  virtual ~PostProcessor() = default;
  virtual void process(std::vector<int32_t>& ids, bool add_special_tokens) const = 0;
};

std::unique_ptr<PostProcessor> make_post_processor(const json::Value& v, const std::string& what);

}  // namespace mmfp4
