// mmfp4 tokenize / detokenize: the model folder's tokenizer on the command line (the folder may hold only the
// tokenizer files). Batch mode turns a JSONL file of strings into JSONL arrays of ids, for data pipelines.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>

#include "args.h"
#include "command.h"
#include "core/error.h"
#include "core/json.h"
#include "tokenizer/tokenizer.h"

namespace mmfp4::cli {
namespace {

constexpr const char* kTokenizeUsage =
    "mmfp4 tokenize -m DIR (-p TEXT | --input-jsonl FILE) [--ids-only] [--no-special]\n\n"
    "output:\n"
    "  -p TEXT              one line per token: ID<TAB>TOKEN<TAB>TEXT, where TOKEN is the vocabulary entry and\n"
    "                       TEXT that token decoded alone, both as JSON strings (e.g. 1879\t\"\\u0120world\"\t\" world\")\n"
    "  -p TEXT --ids-only   the ids on one line, comma-separated (e.g. 9707,1879): the input of `detokenize --ids`\n"
    "  --input-jsonl FILE   each input line is a JSON string; each output line the JSON array of its ids, in the\n"
    "                       same order (FILE - reads standard input); a malformed line is an error naming it";

std::unique_ptr<Tokenizer> open_tokenizer(const Args& a) {
  TokenizerOptions opt;
  opt.add_bos_eos_from_config = a.get_flag("--config-bos");
  return Tokenizer::from_dir(a.require("--model"), opt);
}

void print_ids_json(const std::vector<int32_t>& ids, std::string& out) {
  out += '[';
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  out += "]\n";
}

int run_batch(const Tokenizer& tok, const std::string& path, bool add_special) {
  std::ifstream file;
  std::istream* in = &std::cin;
  if (path != "-") {
    file.open(path);
    if (!file) fail(path, ": cannot open");
    in = &file;
  }
  std::string line, out;
  size_t n = 0;
  while (std::getline(*in, line)) {
    ++n;
    json::Value v;
    try {
      v = json::parse(line, cat(path, ":", n));
    } catch (const Error& e) {
      fail(e.what());
    }
    if (!v.is_string()) fail(path, ":", n, ": expected a JSON string, got ", json::Value::type_name(v.type()));
    std::vector<int32_t> ids;
    try {
      ids = tok.encode(v.as_string(), add_special);
    } catch (const Error& e) {
      fail(path, ":", n, ": ", e.what());
    }
    print_ids_json(ids, out);
    if (out.size() > (1 << 16)) {
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int cmd_tokenize(const std::vector<std::string>& args) {
  Args a("tokenize", kTokenizeUsage);
  a.option("-m", "--model", "DIR", "model (or tokenizer-only) folder with tokenizer.json");
  a.option("-p", "--prompt", "TEXT", "text to tokenize");
  a.option("", "--input-jsonl", "FILE", "batch mode: one JSON string per line (- for stdin)");
  a.flag("--ids-only", "print only the ids, comma-separated");
  a.flag("--no-special", "do not add special tokens (BOS etc.) around the text");
  a.flag("--config-bos", "also add BOS/EOS as tokenizer_config.json's add_bos_token/add_eos_token ask (transformers)");
  if (!a.parse(args)) return 0;
  bool add_special = !a.get_flag("--no-special");
  if (a.has("--input-jsonl") == a.has("--prompt")) fail("give exactly one of -p TEXT and --input-jsonl FILE");
  auto tok = open_tokenizer(a);
  if (a.has("--input-jsonl")) return run_batch(*tok, a.get("--input-jsonl"), add_special);

  std::vector<int32_t> ids = tok->encode(a.get("--prompt"), add_special);
  std::string out;
  if (a.get_flag("--ids-only")) {
    for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
    out += '\n';
  } else {
    for (int32_t id : ids) {
      out += std::to_string(id);
      out += '\t';
      json::write_string(out, tok->id_to_token(id).value_or(""));
      out += '\t';
      json::write_string(out, tok->decode({id}, false));
      out += '\n';
    }
  }
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

int cmd_detokenize(const std::vector<std::string>& args) {
  Args a("detokenize", "mmfp4 detokenize -m DIR --ids 1,2,3 [--skip-special]\n\n"
                       "prints the decoded text followed by a newline (--json: as one JSON string)");
  a.option("-m", "--model", "DIR", "model (or tokenizer-only) folder with tokenizer.json");
  a.option("", "--ids", "IDS", "comma-separated token ids");
  a.flag("--skip-special", "leave out special tokens (BOS, EOS, chat markers)");
  a.flag("--json", "print the text as a JSON string (shows whitespace and control characters)");
  if (!a.parse(args)) return 0;
  auto tok = open_tokenizer(a);
  std::vector<int32_t> ids;
  for (int64_t v : parse_int_list(a.require("--ids"), "--ids")) {
    if (v < INT32_MIN || v > INT32_MAX) fail("--ids: ", v, " is not a token id");
    ids.push_back(int32_t(v));
  }
  std::string text = tok->decode(ids, a.get_flag("--skip-special"));
  std::string out;
  if (a.get_flag("--json")) json::write_string(out, text);
  else out = text;
  out += '\n';
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}

}  // namespace

MMFP4_COMMAND("tokenize", "text -> token ids with a model folder's tokenizer (also JSONL batches)", cmd_tokenize);
MMFP4_COMMAND("detokenize", "token ids -> text with a model folder's tokenizer", cmd_detokenize);

}  // namespace mmfp4::cli
