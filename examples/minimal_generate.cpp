// The smallest program on the mmfp4 library: open a model folder, generate from a prompt, stream the text to
// stdout as it is produced. It uses only the public header mmfp4/engine.h.
//
//   minimal_generate MODEL_DIR ["prompt"] [max_new_tokens]
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "mmfp4/engine.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: %s MODEL_DIR [\"prompt\"] [max_new_tokens]\n", argv[0]);
    return 2;
  }
  try {
    mmfp4::EngineOptions options;
    options.model_dir = argv[1];
    options.max_batch = 1;  // one request at a time: the smallest memory plan
    auto engine = mmfp4::Engine::open(options);

    mmfp4::Request request;
    request.prompt = engine->tokenize(argc > 2 ? argv[2] : "The quick brown fox");
    request.max_new_tokens = argc > 3 ? std::atoi(argv[3]) : 64;
    request.sampling = engine->default_sampling();  // the model's generation_config.json (greedy if it has none)

    // The callback runs once per token (and once at the end) with the text that became printable.
    const mmfp4::Result result = engine->generate(request, [](const mmfp4::TokenEvent& event) {
      std::fwrite(event.text.data(), 1, event.text.size(), stdout);
      std::fflush(stdout);
    });
    std::printf("\n");
    if (result.reason == mmfp4::FinishReason::Error) {
      std::fprintf(stderr, "error: %s\n", result.error.c_str());
      return 1;
    }
    std::fprintf(stderr, "[%zu prompt tokens, %zu generated, %.1f tokens/s, finished: %s]\n", result.prompt_ids.size(),
                 result.ids.size(), result.decode_tokens_per_s, mmfp4::finish_reason_name(result.reason));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
