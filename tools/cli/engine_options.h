// Options shared by the subcommands that run a model (generate, chat, serve, bench, perplexity): model folder,
// device, threads, context, debugging.
#pragma once

#include "args.h"
#include "mmfp4/engine.h"

namespace mmfp4::cli {

// Declares -m/--model, --device, -t/--threads, --ctx, --check, --verbose.
void add_engine_options(Args& a);
// Reads them back (after parse); also applies --verbose to the log level.
EngineOptions engine_options(const Args& a);

// Declares --temp, --top-k, --top-p, --min-p, --repeat-penalty, --presence-penalty, --frequency-penalty, --seed.
void add_sampling_options(Args& a);
// The model's defaults (generation_config.json) overridden by what was given.
SamplingParams sampling_options(const Args& a, const SamplingParams& defaults);

}  // namespace mmfp4::cli
