// Chat templates: the Jinja2 template a model folder ships (chat_template.jinja or
// tokenizer_config.json["chat_template"]) turns a conversation into the prompt text the model was trained on.
// ChatTemplate renders it exactly as transformers' apply_chat_template does (Jinja2 sandbox with trim_blocks,
// lstrip_blocks and loop controls; transformers' tojson, raise_exception and strftime_now), with a Jinja2
// subset large enough for the real templates of Qwen3, DeepSeek-V3, Llama 3.x and GLM-4.x. The supported subset
// and the error format are described in docs/chat_templates.md.
//
//   auto t = ChatTemplate::parse(*find_chat_template_source(model_dir));
//   json::Value ctx = json::parse(R"({"messages": [{"role": "user", "content": "Hi"}],
//                                     "add_generation_prompt": true, "bos_token": "<s>"})");
//   std::string prompt = t.render(ctx);
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "core/json.h"
#include "tokenizer/jinja/error.h"
#include "tokenizer/jinja/render_options.h"

namespace mmfp4 {

namespace jinja {
struct ParsedTemplate;
}

using ChatRenderOptions = jinja::RenderOptions;

class ChatTemplate {
 public:
  // Parses the template once; throws TemplateError (an mmfp4::Error) naming `name`, line and column for unknown
  // syntax, tags, filters or tests: "chat_template:12:5: unknown filter 'urlize'".
  static ChatTemplate parse(const std::string& source, const std::string& name = "chat_template");

  // context: a JSON object with "messages" (array of {role, content, ...}), "add_generation_prompt",
  // "bos_token", "eos_token", optional "tools", "documents", "enable_thinking" and any other kwargs, as
  // transformers passes them. Like apply_chat_template, "tools" and "documents" are None and
  // "add_generation_prompt" is false when absent. Throws TemplateError with the template line and column for
  // runtime errors, including the template's own raise_exception(msg) (kind() == Raised, message() == msg).
  // Thread-safe: a parsed template may be rendered from many threads at once.
  std::string render(const json::Value& context) const;
  std::string render(const json::Value& context, const ChatRenderOptions& options) const;

  const std::string& name() const;
  const std::string& source() const;

 private:
  std::shared_ptr<const jinja::ParsedTemplate> impl_;
};

// Finds the chat template of a model folder: chat_template.jinja, else tokenizer_config.json["chat_template"]
// (a string, or a list of {"name", "template"}: "default" is picked, or `name` when given), else
// chat_template.json (processor folders). A `name` other than "default" is looked up in
// additional_chat_templates/<name>.jinja and in the named list. Returns nullopt when the folder has no template;
// throws mmfp4::Error when `name` is not among the templates found or the list has no default.
std::optional<std::string> find_chat_template_source(const std::string& dir, const std::string& name = "");

}  // namespace mmfp4
