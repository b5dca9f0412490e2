#include "tokenizer/chat_template.h"

#include "core/mapped_file.h"
#include "tokenizer/jinja/json_bridge.h"
#include "tokenizer/jinja/parser.h"
#include "tokenizer/jinja/renderer.h"

namespace mmfp4 {

TemplateError::TemplateError(Kind kind, std::string name, uint32_t line, uint32_t column, std::string message)
    : Error(cat(name, ":", line, ":", column, ": ",
                kind == Kind::Syntax  ? "syntax error: "
                : kind == Kind::Raised ? "raise_exception: "
                                       : "error: ",
                message)),
      kind_(kind),
      name_(std::move(name)),
      line_(line),
      column_(column),
      message_(std::move(message)) {}

namespace jinja {
struct ParsedTemplate {
  std::string name;
  std::string source;
  Body body;
};
}  // namespace jinja

ChatTemplate ChatTemplate::parse(const std::string& source, const std::string& name) {
  auto t = std::make_shared<jinja::ParsedTemplate>();
  t->name = name;
  t->source = source;
  t->body = jinja::parse_template(source, name);
  ChatTemplate ct;
  ct.impl_ = std::move(t);
  return ct;
}

std::string ChatTemplate::render(const json::Value& context) const { return render(context, ChatRenderOptions{}); }

std::string ChatTemplate::render(const json::Value& context, const ChatRenderOptions& options) const {
  if (!impl_) throw Error("ChatTemplate::render: no template parsed");
  if (!context.is_object()) fail(impl_->name, ": the render context must be a JSON object, not ", json::Value::type_name(context.type()));
  jinja::Value ctx = jinja::from_json(context);
  // apply_chat_template always passes these, so templates may test `tools is not none` without `is defined`.
  for (const char* key : {"tools", "documents"})
    if (!ctx.dict_data().find_key(key)) ctx.dict_data().set(jinja::Value(key), jinja::Value::none());
  if (!ctx.dict_data().find_key("add_generation_prompt"))
    ctx.dict_data().set(jinja::Value("add_generation_prompt"), jinja::Value(false));
  jinja::Renderer r(impl_->name, options);
  return r.render(impl_->body, ctx);
}

const std::string& ChatTemplate::name() const {
  static const std::string empty;
  return impl_ ? impl_->name : empty;
}

const std::string& ChatTemplate::source() const {
  static const std::string empty;
  return impl_ ? impl_->source : empty;
}

namespace {

// tokenizer_config.json / chat_template.json "chat_template": a string, or [{"name": ..., "template": ...}].
std::optional<std::string> pick_template(const json::Value& ct, const std::string& name, const std::string& file) {
  if (ct.is_null()) return std::nullopt;
  if (ct.is_string()) {
    if (!name.empty() && name != "default")
      fail(file, ": has a single chat template, no template named '", name, "'");
    return ct.as_string();
  }
  if (!ct.is_array()) fail(file, ": \"chat_template\" must be a string or a list of {name, template}");
  std::string want = name.empty() ? "default" : name;
  std::string names;
  for (const json::Value& e : ct.as_array()) {
    if (!e.is_object() || !e["name"].is_string() || !e["template"].is_string())
      fail(file, ": every entry of \"chat_template\" needs a string \"name\" and \"template\"");
    if (e["name"].as_string() == want) return e["template"].as_string();
    names += (names.empty() ? "" : ", ") + e["name"].as_string();
  }
  if (name.empty()) fail(file, ": has several chat templates (", names, ") and none named 'default'; pick one by name");
  fail(file, ": no chat template named '", name, "' (have: ", names, ")");
}

}  // namespace

std::optional<std::string> find_chat_template_source(const std::string& dir, const std::string& name) {
  const bool named = !name.empty() && name != "default";
  if (named) {
    std::string extra = dir + "/additional_chat_templates/" + name + ".jinja";
    if (file_exists(extra)) return read_file(extra);
  } else if (file_exists(dir + "/chat_template.jinja")) {
    return read_file(dir + "/chat_template.jinja");
  }
  for (const char* file : {"tokenizer_config.json", "chat_template.json"}) {
    std::string path = dir + "/" + file;
    if (!file_exists(path)) continue;
    json::Value cfg = json::parse(read_file(path), path);
    if (const json::Value* ct = cfg.find("chat_template")) {
      if (auto src = pick_template(*ct, name, path)) return src;
    }
  }
  if (named) fail(dir, ": no chat template named '", name, "'");
  return std::nullopt;
}

}  // namespace mmfp4
