// Element types as safetensors names them. Byte sizes and names in one table.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace mmfp4 {

enum class DType : uint8_t { BOOL, U8, I8, F8_E4M3, F8_E5M2, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64 };

struct DTypeInfo {
  DType dtype;
  std::string_view name;  // as written in a safetensors header
  size_t bytes;
};

inline constexpr DTypeInfo kDTypes[] = {
    {DType::BOOL, "BOOL", 1}, {DType::U8, "U8", 1},     {DType::I8, "I8", 1},   {DType::F8_E4M3, "F8_E4M3", 1},
    {DType::F8_E5M2, "F8_E5M2", 1}, {DType::I16, "I16", 2}, {DType::U16, "U16", 2}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I32, "I32", 4},   {DType::U32, "U32", 4}, {DType::F32, "F32", 4},
    {DType::I64, "I64", 8},   {DType::U64, "U64", 8},   {DType::F64, "F64", 8},
};

inline constexpr size_t dtype_size(DType t) { return kDTypes[size_t(t)].bytes; }
inline constexpr std::string_view dtype_name(DType t) { return kDTypes[size_t(t)].name; }
inline std::optional<DType> dtype_from_name(std::string_view s) {
  for (const auto& d : kDTypes)
    if (d.name == s) return d.dtype;
  return std::nullopt;
}
inline constexpr bool dtype_is_float(DType t) {
  return t == DType::F16 || t == DType::BF16 || t == DType::F32 || t == DType::F64;
}

}  // namespace mmfp4
