#include "tokenizer/post_processor.h"

#include "tokenizer/json_read.h"

namespace mmfp4 {

namespace {

// A single-sequence template: special-token id runs and occurrences of the sequence ($A) in order.
class Template final : public PostProcessor {
 public:
  struct Item {
    bool sequence;
    std::vector<int32_t> ids;
  };
  explicit Template(std::vector<Item> items) : items_(std::move(items)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    std::vector<int32_t> out;
    out.reserve(ids.size() + 8);
    for (const Item& it : items_) {
      if (it.sequence) out.insert(out.end(), ids.begin(), ids.end());
      else if (add_special_tokens) out.insert(out.end(), it.ids.begin(), it.ids.end());
    }
    ids = std::move(out);
  }

 private:
  std::vector<Item> items_;
};

class Nothing final : public PostProcessor {
 public:
  void process(std::vector<int32_t>&, bool) const override {}
};

class Sequence final : public PostProcessor {
 public:
  explicit Sequence(std::vector<std::unique_ptr<PostProcessor>> parts) : parts_(std::move(parts)) {}
  void process(std::vector<int32_t>& ids, bool add_special_tokens) const override {
    for (const auto& p : parts_) p->process(ids, add_special_tokens);
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> parts_;
};

std::unique_ptr<PostProcessor> make_template(const json::Value& v, const std::string& w) {
  const json::Value& single = jr::field(v, "single", w);
  if (!single.is_array()) fail(w, ": \"single\" must be an array of pieces");
  const json::Value& specials = jr::field(v, "special_tokens", w);
  std::vector<Template::Item> items;
  for (size_t i = 0; i < single.size(); ++i) {
    const json::Value& piece = single[i];
    std::string pw = cat(w, ".single[", i, "]");
    if (const json::Value* seq = piece.find("Sequence")) {
      std::string id = jr::str(*seq, "id", pw);
      if (id != "A") fail(pw, ": the single-sequence template refers to sequence \"", id, "\"");
      items.push_back({true, {}});
    } else if (const json::Value* sp = piece.find("SpecialToken")) {
      std::string id = jr::str(*sp, "id", pw);
      const json::Value* def = specials.find(id);
      if (!def) fail(pw, ": special token \"", id, "\" is not in \"special_tokens\"");
      Template::Item item{false, {}};
      for (const json::Value& x : jr::array(*def, "ids", cat(w, ".special_tokens[\"", id, "\"]"))) {
        if (!x.is_int() || x.as_int() < 0) fail(w, ": special token \"", id, "\" has a bad id");
        item.ids.push_back(int32_t(x.as_int()));
      }
      items.push_back(std::move(item));
    } else {
      fail(pw, ": a template piece must be {\"Sequence\": ...} or {\"SpecialToken\": ...}");
    }
  }
  return std::make_unique<Template>(std::move(items));
}

// BertProcessing / RobertaProcessing: "cls": [token, id], "sep": [token, id] -> cls $A sep.
std::unique_ptr<PostProcessor> make_cls_sep(const json::Value& v, const std::string& w) {
  auto id_of = [&](const char* key) {
    const json::Value& pair = jr::field(v, key, w);
    if (!pair.is_array() || pair.size() != 2 || !pair[1].is_int())
      fail(w, ": \"", key, "\" must be [token, id]");
    return int32_t(pair[1].as_int());
  };
  std::vector<Template::Item> items;
  items.push_back({false, {id_of("cls")}});
  items.push_back({true, {}});
  items.push_back({false, {id_of("sep")}});
  return std::make_unique<Template>(std::move(items));
}

}  // namespace

std::unique_ptr<PostProcessor> make_post_processor(const json::Value& v, const std::string& what) {
  if (v.is_null()) return nullptr;
  const std::string& type = jr::type(v, what);
  std::string w = cat(what, " (", type, ")");
  if (type == "TemplateProcessing") return make_template(v, w);
  if (type == "BertProcessing" || type == "RobertaProcessing") return make_cls_sep(v, w);
  if (type == "ByteLevel") return std::make_unique<Nothing>();
  if (type == "Sequence")
    return std::make_unique<Sequence>(jr::component_list(v, "processors", what, w, make_post_processor));
  fail(what, ": post-processor type \"", type, "\" is not supported (supported: TemplateProcessing, ",
       "BertProcessing, RobertaProcessing, ByteLevel, Sequence)");
}

}  // namespace mmfp4
