// Filters over sequences and mappings (Jinja2 3.1 semantics). Where Jinja returns a generator (map, select,
// reject, selectattr, rejectattr, unique, batch, slice, items, reverse) we return a one-shot iterator.
#include <algorithm>

#include "tokenizer/jinja/builtin_util.h"
#include "tokenizer/jinja/filters.h"
#include "tokenizer/jinja/utf8.h"

namespace mmfp4::jinja::filters {

namespace {

Value make_list(Renderer& r, std::vector<Value> items) {
  r.charge(items.size());
  return Value::list(std::move(items));
}

// The filters that are Python generators in Jinja return one-shot iterators, so that truthiness (always true),
// len() (an error) and a second iteration (empty) behave as in Jinja.
Value make_generator(Renderer& r, std::vector<Value> items) {
  r.charge(items.size() + 1);
  return Value::iterator(std::move(items));
}

// Jinja's select/reject family: optional attribute lookup, then a named test or plain truthiness.
Value select_impl(Renderer& r, const Value& v, Args& args, bool keep_when, bool lookup_attr) {
  if (!truthy(v)) return make_generator(r, {});
  size_t off = 0;
  Value attribute;
  if (lookup_attr) {
    if (args.positional.empty()) runtime_fail("Missing parameter for attribute name");
    attribute = args.positional[0];
    off = 1;
  }
  std::string test;
  Args test_args;
  bool has_test = args.positional.size() > off;
  if (has_test) {
    test = to_str(args.positional[off]);
    test_args.positional.assign(args.positional.begin() + long(off) + 1, args.positional.end());
    test_args.keyword = args.keyword;
  }
  std::vector<Value> out;
  for (const Value& item : iterate(v)) {
    Value x = lookup_attr ? attr_path(item, attribute) : item;
    bool ok;
    if (has_test) {
      Args a = test_args;
      ok = r.run_test(test, x, a);
    } else {
      ok = truthy(x);
    }
    if (ok == keep_when) out.push_back(item);
  }
  return make_generator(r, std::move(out));
}

Value min_max(Renderer&, const Value& v, Args& args, bool want_max, const char* name) {
  ArgBinder a(args, name, {"case_sensitive", "attribute"});
  bool case_sensitive = a.given(0) && truthy(a[0]);
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  auto key = [&](const Value& x) {
    Value k = a.given(1) && !a[1].is_none() ? attr_path(x, a[1]) : x;
    return case_sensitive ? k : ignore_case(k);
  };
  size_t best = 0;
  Value best_key = key(items[0]);
  for (size_t i = 1; i < items.size(); ++i) {
    Value k = key(items[i]);
    // Python's max keeps the first of equal maxima, min the first of equal minima.
    if (want_max ? less(best_key, k) : less(k, best_key)) {
      best = i;
      best_key = k;
    }
  }
  return items[best];
}

}  // namespace

Value batch(Renderer& r, const Value& v, Args& args) {
  ArgBinder a(args, "batch", {"linecount", "fill_with"});
  int64_t n = to_index(a[0], "batch");
  if (n <= 0) runtime_fail("batch linecount must be positive");
  std::vector<Value> out, cur;
  for (Value& x : iterate(v)) {
    if (int64_t(cur.size()) == n) {
      out.push_back(Value::list(std::move(cur)));
      cur.clear();
    }
    cur.push_back(std::move(x));
  }
  if (!cur.empty()) {
    if (a.given(1) && !a[1].is_none())
      while (int64_t(cur.size()) < n) cur.push_back(a[1]);
    out.push_back(Value::list(std::move(cur)));
  }
  return make_generator(r, std::move(out));
}

Value slice(Renderer& r, const Value& v, Args& args) {
  ArgBinder a(args, "slice", {"slices", "fill_with"});
  int64_t slices = to_index(a[0], "slice");
  if (slices <= 0) runtime_fail("slice count must be positive");
  r.charge(uint64_t(slices));
  std::vector<Value> seq = iterate(v);
  int64_t length = int64_t(seq.size());
  int64_t per = length / slices, extra = length % slices, offset = 0;
  std::vector<Value> out;
  for (int64_t k = 0; k < slices; ++k) {
    int64_t start = offset + k * per;
    if (k < extra) ++offset;
    int64_t end = offset + (k + 1) * per;
    std::vector<Value> part(seq.begin() + start, seq.begin() + end);
    if (a.given(1) && !a[1].is_none() && k >= extra) part.push_back(a[1]);
    out.push_back(Value::list(std::move(part)));
  }
  return make_generator(r, std::move(out));
}

Value length(Renderer&, const Value& v, Args& args) {
  ArgBinder(args, "length", {});
  auto n = jinja::length(v);
  if (!n) runtime_fail("object of type '", type_name(v), "' has no len()");
  return Value(int64_t(*n));
}

Value dictsort(Renderer& r, const Value& v, Args& args) {
  ArgBinder a(args, "dictsort", {"case_sensitive", "by", "reverse"});
  bool case_sensitive = a.given(0) && truthy(a[0]);
  std::string by = a.given(1) ? to_str(a[1]) : "key";
  bool reverse = a.given(2) && truthy(a[2]);
  size_t pos;
  if (by == "key") pos = 0;
  else if (by == "value") pos = 1;
  else runtime_fail("You can only sort by either 'key' or 'value'");
  if (!v.is_dict()) {
    require_defined(v);
    runtime_fail("'", type_name(v), "' object has no attribute 'items'");
  }
  std::vector<Value> items;
  for (const auto& [k, x] : v.dict_data().entries()) items.push_back(Value::tuple({k, x}));
  sort_by_key(items, [&](const Value& it) {
    const Value& x = it.items()[pos];
    return case_sensitive ? x : ignore_case(x);
  }, reverse);
  return make_list(r, std::move(items));
}

Value first(Renderer&, const Value& v, Args& args) {
  ArgBinder(args, "first", {});
  if (v.is_sequence()) return v.items().empty() ? Value::undefined("No first item, sequence was empty.") : v.items()[0];
  if (v.is_iterator()) {  // next(): takes one item
    ListData& d = v.list_data();
    if (d.pos >= d.items.size()) return Value::undefined("No first item, sequence was empty.");
    return d.items[d.pos++];
  }
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No first item, sequence was empty.");
  return items.front();
}

Value last(Renderer&, const Value& v, Args& args) {
  ArgBinder(args, "last", {});
  if (v.is_sequence()) return v.items().empty() ? Value::undefined("No last item, sequence was empty.") : v.items().back();
  if (v.is_iterator()) runtime_fail("'generator' object is not reversible");
  std::vector<Value> items = iterate(v);
  if (items.empty()) return Value::undefined("No last item, sequence was empty.");
  return items.back();
}

Value join(Renderer& r, const Value& v, Args& args) {
  ArgBinder a(args, "join", {"d", "attribute"});
  std::string sep = a.given(0) ? to_str(a[0]) : "";
  std::string out;
  bool firstitem = true;
  for (const Value& item : iterate(v)) {
    if (!firstitem) out += sep;
    firstitem = false;
    out += to_str(a.given(1) && !a[1].is_none() ? attr_path(item, a[1]) : item);
    if (out.size() > r.max_len()) runtime_fail("join result exceeds the size limit");
  }
  return Value(std::move(out));
}

Value list(Renderer& r, const Value& v, Args& args) {
  ArgBinder(args, "list", {});
  return make_list(r, iterate(v));
}

Value map(Renderer& r, const Value& v, Args& args) {
  if (!truthy(v)) return make_generator(r, {});
  std::vector<Value> items = iterate(v);
  std::vector<Value> out;
  out.reserve(items.size());
  if (args.positional.empty()) {
    Value attribute, fallback;
    bool has_attr = false, has_default = false;
    for (const auto& [k, x] : args.keyword) {
      if (k == "attribute") attribute = x, has_attr = true;
      else if (k == "default") fallback = x, has_default = true;
      else runtime_fail("Unexpected keyword argument '", k, "'");
    }
    if (!has_attr) runtime_fail("map requires a filter argument");
    for (const Value& item : items)
      out.push_back(attr_path(item, attribute, has_default && !fallback.is_none() ? &fallback : nullptr));
    return make_generator(r, std::move(out));
  }
  std::string name = to_str(args.positional[0]);
  Args rest;
  rest.positional.assign(args.positional.begin() + 1, args.positional.end());
  rest.keyword = args.keyword;
  for (const Value& item : items) {
    Args a = rest;
    out.push_back(r.run_filter(name, item, a));
  }
  return make_generator(r, std::move(out));
}

Value max(Renderer& r, const Value& v, Args& args) { return min_max(r, v, args, true, "max"); }
Value min(Renderer& r, const Value& v, Args& args) { return min_max(r, v, args, false, "min"); }
Value select(Renderer& r, const Value& v, Args& args) { return select_impl(r, v, args, true, false); }
Value reject(Renderer& r, const Value& v, Args& args) { return select_impl(r, v, args, false, false); }
Value selectattr(Renderer& r, const Value& v, Args& args) { return select_impl(r, v, args, true, true); }
Value rejectattr(Renderer& r, const Value& v, Args& args) { return select_impl(r, v, args, false, true); }

Value reverse(Renderer& r, const Value& v, Args& args) {
  ArgBinder(args, "reverse", {});
  if (v.is_string()) {
    auto chars = utf8::chars(v.str());
    std::string out;
    for (auto it = chars.rbegin(); it != chars.rend(); ++it) out += *it;
    return Value(std::move(out));
  }
  // reversed(x) is an iterator; a generator is not reversible, so Jinja falls back to a reversed list.
  bool was_iterator = v.is_iterator();
  std::vector<Value> items = iterate(v);
  std::reverse(items.begin(), items.end());
  return was_iterator ? make_list(r, std::move(items)) : make_generator(r, std::move(items));
}

Value sort(Renderer& r, const Value& v, Args& args) {
  ArgBinder a(args, "sort", {"reverse", "case_sensitive", "attribute"});
  bool reverse = a.given(0) && truthy(a[0]);
  bool case_sensitive = a.given(1) && truthy(a[1]);
  std::vector<Value> items = iterate(v);
  // attribute may list several comma-separated attributes: the key is then the tuple of them.
  std::vector<Value> attrs;
  if (a.given(2) && !a[2].is_none()) {
    if (a[2].is_string()) {
      const std::string& s = a[2].str();
      size_t start = 0;
      while (true) {
        size_t comma = s.find(',', start);
        attrs.emplace_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        if (comma == std::string::npos) break;
        start = comma + 1;
      }
    } else {
      attrs.push_back(a[2]);
    }
  }
  // Jinja's key is always a list of the attribute values (make_multi_attrgetter), so equal keys compare by ==
  // first: [none, none] | sort works although none < none does not.
  sort_by_key(items, [&](const Value& x) {
    auto one = [&](const Value& attribute) {
      Value k = attribute.is_undefined() ? x : attr_path(x, attribute);
      return case_sensitive ? k : ignore_case(k);
    };
    std::vector<Value> parts;
    if (attrs.empty()) parts.push_back(one(Value()));
    for (const Value& at : attrs) parts.push_back(one(at));
    return Value::list(std::move(parts));
  }, reverse);
  return make_list(r, std::move(items));
}

Value sum(Renderer& r, const Value& v, Args& args) {
  ArgBinder a(args, "sum", {"attribute", "start"});
  Value total = a.get(1, Value(int64_t(0)));
  for (const Value& item : iterate(v)) {
    Value x = a.given(0) && !a[0].is_none() ? attr_path(item, a[0]) : item;
    total = add(total, x, r.max_len());
  }
  return total;
}

Value unique(Renderer& r, const Value& v, Args& args) {
  ArgBinder a(args, "unique", {"case_sensitive", "attribute"});
  bool case_sensitive = a.given(0) && truthy(a[0]);
  std::vector<Value> seen, out;
  for (const Value& item : iterate(v)) {
    Value k = a.given(1) && !a[1].is_none() ? attr_path(item, a[1]) : item;
    if (!case_sensitive) k = ignore_case(k);
    require_hashable_value(k);
    r.charge(seen.size() / 64 + 1);
    bool dup = std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); });
    if (dup) continue;
    seen.push_back(k);
    out.push_back(item);
  }
  return make_generator(r, std::move(out));
}

Value items(Renderer& r, const Value& v, Args& args) {
  ArgBinder(args, "items", {});
  if (v.is_undefined()) return make_generator(r, {});
  if (!v.is_dict()) runtime_fail("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, x] : v.dict_data().entries()) out.push_back(Value::tuple({k, x}));
  return make_generator(r, std::move(out));
}

}  // namespace mmfp4::jinja::filters
