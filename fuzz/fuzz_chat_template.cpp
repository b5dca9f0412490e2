// libFuzzer target for the chat template engine: arbitrary bytes are parsed and rendered against a fixed chat
// context (messages with tool calls and reasoning, tools, special tokens). Property: every input either renders
// or fails with mmfp4::Error (TemplateError) — no crash, no sanitizer report, no hang (the render limits below
// bound steps, output and recursion), no leak (reference cycles made by in-place mutation are broken).
// Half of the inputs are spliced into the real templates of tests/chat_template/data/templates, so the fuzzer
// starts from deep, valid syntax instead of having to discover it.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "core/mapped_file.h"
#include "tokenizer/chat_template.h"

using namespace mmfp4;

namespace {

const std::vector<std::string>& bases() {
  static const std::vector<std::string> b = [] {
    std::vector<std::string> out = {
        "{% for m in messages %}{{ m.role }}: {{ m.content | trim }}\n{% endfor %}",
        "{%- set ns = namespace(n=0) -%}{%- for t in tools if t.type == 'function' -%}{%- set ns.n = ns.n + 1 -%}"
        "{{ t.function | tojson(indent=2) }}{%- endfor -%}{{ ns.n }}",
        "{% macro f(x, y=1) %}{{ x ~ y }}{% if x is string %}{{ x.split(',') | join('|') }}{% endif %}{% endmacro %}"
        "{{ f('a,b') }}{{ f(1, y=[1, 2][::-1]) }}",
    };
    std::string root = __FILE__;
    root = root.substr(0, root.rfind("/fuzz/"));
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(root + "/tests/chat_template/data/templates", ec))
      if (e.path().extension() == ".jinja") out.push_back(read_file(e.path().string()));
    return out;
  }();
  return b;
}

const json::Value& context() {
  static const json::Value ctx = json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are helpful."},
      {"role": "user", "content": "Weather in Zürich? <b>&</b>"},
      {"role": "assistant", "content": "<think>\nlook it up\n</think>\n\nChecking.", "reasoning_content": "r",
       "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Zürich"}}},
                      {"type": "function", "function": {"name": "search", "arguments": "{\"q\": 1}"}}]},
      {"role": "tool", "content": "21"},
      {"role": "assistant", "content": null},
      {"role": "user", "content": [{"type": "text", "text": "part"}, {"type": "image"}]}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
    "add_generation_prompt": true, "enable_thinking": false, "bos_token": "<s>", "eos_token": "</s>",
    "builtin_tools": ["brave_search"], "n": 3, "f": 1.5, "nested": {"a": [1, [2, [3, {"b": null}]]]}
  })");
  return ctx;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] & 1) {
    // Splice the input into a base template at a position chosen by the next two bytes.
    const auto& b = bases();
    const std::string& base = b[(data[0] >> 1) % b.size()];
    size_t at = 0;
    if (text.size() >= 2) {
      at = (size_t(uint8_t(text[0])) << 8 | uint8_t(text[1])) % (base.size() + 1);
      text.erase(0, 2);
    }
    text = base.substr(0, at) + text + base.substr(at);
  }
  ChatRenderOptions opt;
  opt.max_steps = 50000;
  opt.max_output_bytes = 1 << 16;
  opt.max_call_depth = 24;
  std::tm t{};
  t.tm_year = 124;
  t.tm_mon = 6;
  t.tm_mday = 26;
  opt.now = t;
  try {
    ChatTemplate tmpl = ChatTemplate::parse(text);
    std::string out = tmpl.render(context(), opt);
    if (out.size() > opt.max_output_bytes) __builtin_trap();
  } catch (const Error&) {
  }
  return 0;
}
