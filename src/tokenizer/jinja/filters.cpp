// The filter registry: Jinja2's builtin filter names mapped to their implementations.
#include "tokenizer/jinja/filters.h"

#include <cstring>

namespace mmfp4::jinja {

namespace {

struct Entry {
  const char* name;
  FilterFn fn;
};

const Entry kFilters[] = {
    {"abs", filters::abs},
    {"attr", filters::attr},
    {"batch", filters::batch},
    {"capitalize", filters::capitalize},
    {"center", filters::center},
    {"count", filters::length},
    {"d", filters::default_},
    {"default", filters::default_},
    {"dictsort", filters::dictsort},
    {"e", filters::escape},
    {"escape", filters::escape},
    {"first", filters::first},
    {"float", filters::to_float},
    {"forceescape", filters::escape},
    {"format", filters::format},
    {"indent", filters::indent},
    {"int", filters::to_int},
    {"items", filters::items},
    {"join", filters::join},
    {"last", filters::last},
    {"length", filters::length},
    {"list", filters::list},
    {"lower", filters::lower},
    {"map", filters::map},
    {"max", filters::max},
    {"min", filters::min},
    {"reject", filters::reject},
    {"rejectattr", filters::rejectattr},
    {"replace", filters::replace},
    {"reverse", filters::reverse},
    {"round", filters::round},
    {"safe", filters::safe},
    {"select", filters::select},
    {"selectattr", filters::selectattr},
    {"slice", filters::slice},
    {"sort", filters::sort},
    {"string", filters::string},
    {"sum", filters::sum},
    {"title", filters::title},
    {"tojson", filters::tojson},
    {"trim", filters::trim},
    {"truncate", filters::truncate},
    {"unique", filters::unique},
    {"upper", filters::upper},
    {"wordcount", filters::wordcount},
};

// Jinja2 builtins left out: HTML/URL helpers and non-deterministic ones no chat template needs.
const char* const kUnsupported[] = {"filesizeformat", "groupby", "pprint", "random", "striptags", "urlencode",
                                    "urlize", "wordwrap", "xmlattr"};

}  // namespace

FilterFn find_filter(std::string_view name) {
  for (const Entry& e : kFilters)
    if (name == e.name) return e.fn;
  return nullptr;
}

bool is_unsupported_filter(std::string_view name) {
  for (const char* n : kUnsupported)
    if (name == n) return true;
  return false;
}

}  // namespace mmfp4::jinja
