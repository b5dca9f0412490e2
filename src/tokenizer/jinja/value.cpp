#include "tokenizer/jinja/value.h"

#include <cmath>

#include "tokenizer/jinja/builtins.h"
#include "tokenizer/jinja/python_ops.h"

namespace mmfp4::jinja {

Value Value::undefined(std::string hint) {
  Value v;
  v.s_ = std::make_shared<const std::string>(std::move(hint));
  return v;
}

Value Value::list(std::vector<Value> items) {
  Value v;
  v.kind_ = Kind::List;
  auto d = std::make_shared<ListData>();
  d->items = std::move(items);
  v.p_ = std::move(d);
  return v;
}

Value Value::tuple(std::vector<Value> items) {
  Value v = list(std::move(items));
  v.kind_ = Kind::Tuple;
  return v;
}

Value Value::iterator(std::vector<Value> items) {
  Value v = list(std::move(items));
  v.kind_ = Kind::Iterator;
  return v;
}

Value Value::dict() {
  Value v;
  v.kind_ = Kind::Dict;
  v.p_ = std::make_shared<DictData>();
  return v;
}

Value Value::namespace_object() {
  Value v = dict();
  v.kind_ = Kind::Namespace;
  return v;
}

Value Value::object(std::shared_ptr<const Object> o) {
  Value v;
  v.kind_ = Kind::Object;
  v.p_ = std::const_pointer_cast<Object>(std::move(o));
  return v;
}

bool Object::attr(std::string_view, Value&) const { return false; }

Value Object::call(Renderer&, Args&) const { runtime_fail("'", type_name(), "' object is not callable"); }

// ---- DictData ------------------------------------------------------------------------------------------------------

namespace {

constexpr size_t kIndexThreshold = 16;

// Python hashes equal numbers equally (1 == 1.0 == True); anything else that is not str/None/tuple is unhashable.
void require_hashable(const Value& k) {
  switch (k.kind()) {
    case Kind::List:
    case Kind::Dict:
    case Kind::Namespace:
      runtime_fail("unhashable type: '", type_name(k), "'");
    case Kind::Iterator:
      return;  // hashed by identity
    case Kind::Tuple:
      for (const Value& x : k.items()) require_hashable(x);
      return;
    case Kind::Undefined:
      return;  // Jinja's Undefined is hashable: `missing in d` is false, not an error
    default: return;
  }
}

}  // namespace

ptrdiff_t DictData::index_of(std::string_view key) const {
  if (index_) {
    auto it = index_->find(std::string(key));
    return it == index_->end() ? -1 : ptrdiff_t(it->second);
  }
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Value& k = entries_[i].first;
    if (k.is_string() && k.str() == key) return ptrdiff_t(i);
  }
  return -1;
}

ptrdiff_t DictData::index_of(const Value& key) const {
  if (key.is_string()) return index_of(std::string_view(key.str()));
  require_hashable(key);
  for (size_t i = 0; i < entries_.size(); ++i) {
    const Value& k = entries_[i].first;
    if (!k.is_string() && equals(k, key)) return ptrdiff_t(i);
  }
  return -1;
}

void DictData::rebuild_index() const {
  if (entries_.size() < kIndexThreshold) {
    index_.reset();
    return;
  }
  index_ = std::make_unique<std::unordered_map<std::string, size_t>>();
  for (size_t i = 0; i < entries_.size(); ++i)
    if (entries_[i].first.is_string()) index_->emplace(entries_[i].first.str(), i);
}

const Value* DictData::find(const Value& key) const {
  ptrdiff_t i = index_of(key);
  return i < 0 ? nullptr : &entries_[size_t(i)].second;
}

Value* DictData::find(const Value& key) {
  ptrdiff_t i = index_of(key);
  return i < 0 ? nullptr : &entries_[size_t(i)].second;
}

const Value* DictData::find_key(std::string_view key) const {
  ptrdiff_t i = index_of(key);
  return i < 0 ? nullptr : &entries_[size_t(i)].second;
}

void DictData::set(Value key, Value v) {
  ptrdiff_t i = index_of(key);
  if (i >= 0) {
    entries_[size_t(i)].second = std::move(v);
    return;
  }
  entries_.emplace_back(std::move(key), std::move(v));
  if (index_) {
    if (entries_.back().first.is_string()) index_->emplace(entries_.back().first.str(), entries_.size() - 1);
  } else if (entries_.size() >= kIndexThreshold) {
    rebuild_index();
  }
}

bool DictData::erase(const Value& key) {
  ptrdiff_t i = index_of(key);
  if (i < 0) return false;
  entries_.erase(entries_.begin() + i);
  rebuild_index();
  return true;
}

void DictData::clear() {
  entries_.clear();
  index_.reset();
}

}  // namespace mmfp4::jinja
