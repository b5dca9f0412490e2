// A small argument parser for the subcommands: declare options, parse, read values. Unknown options, missing
// values and malformed numbers are errors that name the option (never a crash).
//
//   Args a("generate", "mmfp4 generate -m DIR -p TEXT [options]");
//   a.option("-m", "--model", "DIR", "model folder");
//   a.flag("--json", "print one JSON object at the end");
//   a.parse(args);                       // throws mmfp4::Error on bad usage; returns false if --help was printed
//   std::string dir = a.get("--model");  // by long name
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace mmfp4::cli {

class Args {
 public:
  Args(std::string command, std::string usage);

  // An option taking a value. `short_name` may be empty. `def` is the default ("" = none).
  Args& option(const std::string& short_name, const std::string& long_name, const std::string& metavar,
               const std::string& help, const std::string& def = "");
  // A boolean flag.
  Args& flag(const std::string& long_name, const std::string& help, const std::string& short_name = "");
  // Named positional arguments, in order; `required` ones must be present.
  Args& positional(const std::string& name, const std::string& help, bool required = true);

  // Parses args (args[0] is the subcommand name). Returns false when --help was requested (help was printed).
  bool parse(const std::vector<std::string>& args);

  bool has(const std::string& long_name) const;  // given on the command line (or a flag set)
  std::string get(const std::string& long_name) const;  // value (the last if repeated) or default; "" if neither
  std::vector<std::string> get_all(const std::string& long_name) const;  // every value of a repeated option
  std::string require(const std::string& long_name) const;  // error if missing
  int64_t get_int(const std::string& long_name, int64_t def) const;
  double get_double(const std::string& long_name, double def) const;
  bool get_flag(const std::string& long_name) const { return has(long_name); }
  std::string pos(const std::string& name) const;  // "" if absent
  const std::vector<std::string>& extra_positionals() const { return extra_; }

  std::string help() const;

 private:
  struct Opt {
    std::string short_name, long_name, metavar, help, def;
    bool is_flag;
  };
  const Opt* lookup(const std::string& name) const;
  std::string command_, usage_;
  std::vector<Opt> opts_;
  std::vector<std::pair<std::string, std::string>> pos_decl_;  // name, help
  std::vector<bool> pos_required_;
  std::map<std::string, std::string> values_;
  std::map<std::string, std::vector<std::string>> all_values_;
  std::map<std::string, std::string> pos_values_;
  std::vector<std::string> extra_;
};

// "1,2,3" -> {1, 2, 3}; throws naming `what` on a malformed list.
std::vector<int64_t> parse_int_list(const std::string& s, const std::string& what);

// True when stderr is a terminal (progress bars are drawn only then).
bool stderr_is_tty();

// A progress bar on stderr, drawn only on a terminal: "label [=====>    ] 42/100".
class Progress {
 public:
  Progress(std::string label, int64_t total);
  void update(int64_t done, const std::string& note = "");
  void finish();
  ~Progress();

 private:
  std::string label_;
  int64_t total_;
  bool tty_, done_ = false;
  double last_draw_ = 0;
};

}  // namespace mmfp4::cli
