// mmfp4._mmfp4: the C++ half of the Python module `mmfp4` (python/mmfp4/__init__.py re-exports what users call).
// Errors: mmfp4::Error -> mmfp4.Error (a RuntimeError) carrying the engine's message; QueueFull -> mmfp4.QueueFull.
// Nothing reachable from Python asserts: bad input is an exception, never a crash of the interpreter.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>

#include "core/error.h"
#include "gil.h"
#include "core/log.h"
#include "engine_bindings.h"
#include "format/quantize_model.h"
#include "generation.h"
#include "mmfp4/engine.h"

namespace py = pybind11;

namespace mmfp4::python {
namespace {

// Thrown out of the quantizer's progress callback when Ctrl-C is pending or the callback raised; the Python error
// stays set and is raised once the quantizer has unwound and the GIL is held again.
struct Interrupted {};

LogLevel parse_level(const std::string& s) {
  if (s == "error") return LogLevel::Error;
  if (s == "warn") return LogLevel::Warn;
  if (s == "info") return LogLevel::Info;
  if (s == "debug") return LogLevel::Debug;
  fail("log level must be one of error, warn, info, debug; got '", s, "'");
}

py::dict quantize(const std::string& src, const std::string& dst, int group_size, int hadamard, bool force,
                  const py::object& progress) {
  QuantizeModelOptions opt;
  opt.quant.group_size = group_size;
  opt.quant.hadamard_block = hadamard;
  opt.force = force;
  opt.progress = [&progress](int64_t done, int64_t total, const std::string& name) {
    py::gil_scoped_acquire gil;
    if (PyErr_CheckSignals() != 0) throw Interrupted{};
    if (progress.is_none()) return;
    try {
      progress(done, total, name);
    } catch (py::error_already_set& e) {
      e.restore();  // the callback's own exception, raised once the quantizer has unwound
      throw Interrupted{};
    }
  };
  QuantizeModelReport r;
  try {
    ReleasedGil nogil;
    r = quantize_model(src, dst, opt);
  } catch (const Interrupted&) {
    throw py::error_already_set();
  }
  py::dict d;
  d["quantized"] = r.quantized;
  d["kept"] = r.kept;
  d["source_bytes"] = r.source_bytes;
  d["output_bytes"] = r.output_bytes;
  d["shards"] = r.shards;
  d["copied"] = r.copied;
  d["kept_as_bf16"] = r.kept_as_bf16;
  return d;
}

}  // namespace
}  // namespace mmfp4::python

PYBIND11_MODULE(_mmfp4, m) {
  using namespace mmfp4;
  using namespace mmfp4::python;
  m.doc() = "C++ core of the mmfp4 Python module (use `import mmfp4`)";

  static py::exception<Error> error(m, "Error", PyExc_RuntimeError);
  error.doc() = "An error reported by the mmfp4 engine; the message names what was wrong.";
  static py::exception<QueueFull> queue_full(m, "QueueFull", error.ptr());
  // Translators run in reverse order of registration: QueueFull (not an mmfp4::Error) needs its own.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const QueueFull& e) {
      PyErr_SetString(queue_full.ptr(), e.what());
    } catch (const Error& e) {
      PyErr_SetString(error.ptr(), e.what());
    }
  });

  bind_engine(m);
  bind_generation(m);

  m.def(
      "_set_log_level", [](const std::string& level) { set_log_level(parse_level(level)); }, py::arg("level"),
      "Sets the level of the engine's log on stderr: error, warn, info or debug.");
  m.def("_log_level", [] {
    static const char* names[] = {"error", "warn", "info", "debug"};
    return std::string(names[int(log_level())]);
  });
  m.def("_quantize", &quantize, py::arg("src"), py::arg("dst"), py::arg("group_size") = 128,
        py::arg("hadamard") = 0, py::arg("force") = false, py::arg("progress") = py::none());
  m.attr("_version") = MMFP4_VERSION;
}
