// A development tool, not a test: renders a template file with a JSON context file and prints the result (or
// the error) so that behaviour can be compared with Python Jinja2 by hand or by make_expected.py --compare.
//   chat_template_render TEMPLATE.jinja CONTEXT.json [YYYY-MM-DD-HH-MM-SS]
#include <cstdio>
#include <iostream>

#include "core/mapped_file.h"
#include "tokenizer/chat_template.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s TEMPLATE CONTEXT.json [YYYY-MM-DD-HH-MM-SS]\n", argv[0]);
    return 2;
  }
  try {
    auto t = mmfp4::ChatTemplate::parse(mmfp4::read_file(argv[1]));
    mmfp4::ChatRenderOptions opt;
    if (argc > 3) {
      std::tm tm{};
      if (std::sscanf(argv[3], "%d-%d-%d-%d-%d-%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour, &tm.tm_min,
                      &tm.tm_sec) == 6) {
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        opt.now = tm;
      }
    }
    std::cout << t.render(mmfp4::json::parse(mmfp4::read_file(argv[2])), opt);
  } catch (const std::exception& e) {
    std::cout << "ERROR: " << e.what();
    return 1;
  }
  return 0;
}
