// The GIL released for a scope, as pybind11::gil_scoped_release, except that taking it back may end the thread:
// while the interpreter shuts down, CPython ends a daemon thread that asks for the GIL with pthread_exit, whose
// forced unwind has to be let out of this destructor. (pybind11's destructor is noexcept, so a daemon thread still
// generating when Python exits took the whole process down with std::terminate.)
#pragma once

#include <Python.h>

namespace mmfp4::python {

class ReleasedGil {
 public:
  ReleasedGil() : state_(PyEval_SaveThread()) {}
  ~ReleasedGil() noexcept(false) { PyEval_RestoreThread(state_); }
  ReleasedGil(const ReleasedGil&) = delete;
  ReleasedGil& operator=(const ReleasedGil&) = delete;

 private:
  PyThreadState* state_;
};

}  // namespace mmfp4::python
