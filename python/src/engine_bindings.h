// Registers mmfp4._mmfp4._Engine (see engine_bindings.cpp).
#pragma once

#include <pybind11/pybind11.h>

namespace mmfp4::python {

void bind_engine(pybind11::module_& m);

}  // namespace mmfp4::python
