#include "backend/backend.h"

#include "core/error.h"

namespace mmfp4 {

DeviceVector Backend::upload_vector(const std::vector<float>& v, const std::string& what) {
  DeviceVector d;
  d.n = int64_t(v.size());
  d.data = static_cast<float*>(alloc(std::max<size_t>(v.size(), 1) * sizeof(float), what));
  if (!v.empty()) upload(d.data, v.data(), v.size() * sizeof(float));
  return d;
}

}  // namespace mmfp4
