// Declarations of the builtin filters (implemented in filters_text.cpp and filters_sequence.cpp, registered by
// name in filters.cpp). Each follows the Jinja2 3.1 filter of the same name; tojson is transformers' override.
#pragma once

#include "tokenizer/jinja/builtins.h"

namespace mmfp4::jinja::filters {

#define MMFP4_FILTER(name) Value name(Renderer& r, const Value& v, Args& args)
// text and numbers
MMFP4_FILTER(capitalize);
MMFP4_FILTER(center);
MMFP4_FILTER(escape);
MMFP4_FILTER(format);
MMFP4_FILTER(indent);
MMFP4_FILTER(lower);
MMFP4_FILTER(upper);
MMFP4_FILTER(replace);
MMFP4_FILTER(string);
MMFP4_FILTER(title);
MMFP4_FILTER(trim);
MMFP4_FILTER(truncate);
MMFP4_FILTER(wordcount);
MMFP4_FILTER(safe);
MMFP4_FILTER(abs);
MMFP4_FILTER(to_int);
MMFP4_FILTER(to_float);
MMFP4_FILTER(round);
MMFP4_FILTER(tojson);
MMFP4_FILTER(default_);
MMFP4_FILTER(attr);
// sequences and mappings
MMFP4_FILTER(batch);
MMFP4_FILTER(slice);
MMFP4_FILTER(length);
MMFP4_FILTER(dictsort);
MMFP4_FILTER(first);
MMFP4_FILTER(last);
MMFP4_FILTER(join);
MMFP4_FILTER(list);
MMFP4_FILTER(map);
MMFP4_FILTER(max);
MMFP4_FILTER(min);
MMFP4_FILTER(select);
MMFP4_FILTER(reject);
MMFP4_FILTER(selectattr);
MMFP4_FILTER(rejectattr);
MMFP4_FILTER(reverse);
MMFP4_FILTER(sort);
MMFP4_FILTER(sum);
MMFP4_FILTER(unique);
MMFP4_FILTER(items);
#undef MMFP4_FILTER

}  // namespace mmfp4::jinja::filters
