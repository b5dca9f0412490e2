#include "args.h"

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <sstream>

#include "core/error.h"
#include "core/log.h"

namespace mmfp4::cli {

Args::Args(std::string command, std::string usage) : command_(std::move(command)), usage_(std::move(usage)) {}

Args& Args::option(const std::string& s, const std::string& l, const std::string& metavar, const std::string& help,
                   const std::string& def) {
  opts_.push_back({s, l, metavar, help, def, false});
  return *this;
}

Args& Args::flag(const std::string& l, const std::string& help, const std::string& s) {
  opts_.push_back({s, l, "", help, "", true});
  return *this;
}

Args& Args::positional(const std::string& name, const std::string& help, bool required) {
  pos_decl_.emplace_back(name, help);
  pos_required_.push_back(required);
  return *this;
}

const Args::Opt* Args::lookup(const std::string& name) const {
  for (const auto& o : opts_)
    if (o.long_name == name || (!o.short_name.empty() && o.short_name == name)) return &o;
  return nullptr;
}

std::string Args::help() const {
  std::ostringstream os;
  os << "usage: " << usage_ << "\n";
  if (!pos_decl_.empty()) {
    os << "\narguments:\n";
    for (const auto& [n, h] : pos_decl_) os << "  " << n << std::string(n.size() < 24 ? 24 - n.size() : 1, ' ') << h << "\n";
  }
  os << "\noptions:\n";
  for (const auto& o : opts_) {
    std::string lhs = (o.short_name.empty() ? "" : o.short_name + ", ") + o.long_name;
    if (!o.is_flag) lhs += " " + o.metavar;
    os << "  " << lhs << std::string(lhs.size() < 24 ? 24 - lhs.size() : 1, ' ') << o.help;
    if (!o.def.empty()) os << " (default " << o.def << ")";
    os << "\n";
  }
  os << "  -h, --help" << std::string(14, ' ') << "show this help\n";
  return os.str();
}

bool Args::parse(const std::vector<std::string>& args) {
  size_t npos = 0;
  bool only_positional = false;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (!only_positional && a == "--") {
      only_positional = true;
      continue;
    }
    if (!only_positional && (a == "-h" || a == "--help")) {
      std::fputs(help().c_str(), stdout);
      return false;
    }
    if (!only_positional && a.size() > 1 && a[0] == '-' && !(a.size() > 1 && (isdigit(a[1]) || a[1] == '.'))) {
      std::string name = a, inline_value;
      bool has_inline = false;
      if (auto eq = a.find('='); eq != std::string::npos && a.rfind("--", 0) == 0) {
        name = a.substr(0, eq);
        inline_value = a.substr(eq + 1);
        has_inline = true;
      }
      const Opt* o = lookup(name);
      if (!o) fail("unknown option '", name, "' (see `mmfp4 ", command_, " --help`)");
      if (o->is_flag) {
        if (has_inline) fail("option '", name, "' takes no value");
        values_[o->long_name] = "1";
      } else {
        if (has_inline) {
          values_[o->long_name] = inline_value;
        } else {
          if (i + 1 >= args.size()) fail("option '", name, "' needs a value (", o->metavar, ")");
          values_[o->long_name] = args[++i];
        }
        all_values_[o->long_name].push_back(values_[o->long_name]);
      }
      continue;
    }
    if (npos < pos_decl_.size()) {
      pos_values_[pos_decl_[npos].first] = a;
      ++npos;
    } else {
      extra_.push_back(a);
    }
  }
  for (size_t p = npos; p < pos_decl_.size(); ++p)
    if (pos_required_[p]) fail("missing argument ", pos_decl_[p].first, "\n", help());
  return true;
}

bool Args::has(const std::string& l) const { return values_.count(l) > 0; }

std::string Args::get(const std::string& l) const {
  auto it = values_.find(l);
  if (it != values_.end()) return it->second;
  const Opt* o = lookup(l);
  MMFP4_ASSERT(o != nullptr);  // a subcommand asked for an option it did not declare
  return o->def;
}

std::vector<std::string> Args::get_all(const std::string& l) const {
  auto it = all_values_.find(l);
  return it == all_values_.end() ? std::vector<std::string>{} : it->second;
}

std::string Args::require(const std::string& l) const {
  std::string v = get(l);
  if (v.empty()) fail("option ", l, " is required (see `mmfp4 ", command_, " --help`)");
  return v;
}

int64_t Args::get_int(const std::string& l, int64_t def) const {
  std::string v = get(l);
  if (v.empty()) return def;
  int64_t out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size()) fail("option ", l, " expects an integer, got '", v, "'");
  return out;
}

double Args::get_double(const std::string& l, double def) const {
  std::string v = get(l);
  if (v.empty()) return def;
  double out = 0;
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  if (ec != std::errc() || p != v.data() + v.size()) fail("option ", l, " expects a number, got '", v, "'");
  return out;
}

std::string Args::pos(const std::string& name) const {
  auto it = pos_values_.find(name);
  return it == pos_values_.end() ? "" : it->second;
}

std::vector<int64_t> parse_int_list(const std::string& s, const std::string& what) {
  std::vector<int64_t> out;
  size_t i = 0;
  while (i <= s.size()) {
    size_t j = s.find(',', i);
    if (j == std::string::npos) j = s.size();
    std::string item = s.substr(i, j - i);
    while (!item.empty() && item.front() == ' ') item.erase(item.begin());
    while (!item.empty() && item.back() == ' ') item.pop_back();
    if (item.empty()) fail(what, ": empty item in list '", s, "'");
    int64_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || p != item.data() + item.size()) fail(what, ": '", item, "' is not an integer");
    out.push_back(v);
    i = j + 1;
  }
  return out;
}

bool stderr_is_tty() { return ::isatty(2) == 1; }

Progress::Progress(std::string label, int64_t total) : label_(std::move(label)), total_(total), tty_(stderr_is_tty()) {}

void Progress::update(int64_t done, const std::string& note) {
  if (!tty_) return;
  double t = now_seconds();
  if (done < total_ && t - last_draw_ < 0.05) return;
  last_draw_ = t;
  const int width = 30;
  int filled = total_ > 0 ? int(double(done) / double(total_) * width) : width;
  std::string bar(size_t(filled), '=');
  if (filled < width) bar += '>';
  bar.resize(width, ' ');
  std::string n = note.size() > 40 ? "..." + note.substr(note.size() - 37) : note;
  std::fprintf(stderr, "\r%s [%s] %lld/%lld %-40s", label_.c_str(), bar.c_str(), (long long)done, (long long)total_,
               n.c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (!tty_ || done_) return;
  done_ = true;
  update(total_);
  std::fputc('\n', stderr);
}

Progress::~Progress() { finish(); }

}  // namespace mmfp4::cli
