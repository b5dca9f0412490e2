// Probe (device only): does mma.sync bf16 keep subnormal A inputs and tiny products? Prints each case.
// nvcc -arch=sm_90a -o /tmp/probe scripts/device/probe_bf16_subnormal.cu && /tmp/probe
#include <cstdint>
#include <cstdio>
#include <cstring>

__global__ void k(uint32_t a_bits, uint32_t b_bits, float* out) {
  const uint32_t a[4] = {a_bits, a_bits, a_bits, a_bits};
  float d[4] = {0, 0, 0, 0};
  asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
               : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b_bits), "r"(b_bits));
  if (threadIdx.x == 0) out[0] = d[0];
}

static uint16_t bf(float f) { uint32_t u; std::memcpy(&u, &f, 4); return uint16_t(u >> 16); }

int main() {
  float* d;
  cudaMalloc(&d, 4);
  struct Case { const char* what; uint16_t a, b; double expect; } cases[] = {
      {"a = 2^-127 (subnormal 0x0040), b = 2^100", 0x0040, bf(0x1p100f), 16 * 0x1p-27},
      {"a = 2^-126 (min normal), b = 2^100", 0x0080, bf(0x1p100f), 16 * 0x1p-26},
      {"a = 3*2^-126 (0x00c0), b = 1.5*2^100", 0x00c0, bf(0x1.8p100f), 16 * 0x1p-26 * 2.25},
      {"a = 2^-127, b = 1 (product 2^-127: fp32 subnormal)", 0x0040, bf(1.0f), 16 * 0x1p-127},
      {"a = 2^-127, b = 2^-20 (product 2^-147)", 0x0040, bf(0x1p-20f), 16 * 0x1p-147},
  };
  int bad = 0;
  for (auto& c : cases) {
    const uint32_t a = c.a | uint32_t(c.a) << 16, b = c.b | uint32_t(c.b) << 16;
    k<<<1, 32>>>(a, b, d);
    float h = 0;
    cudaMemcpy(&h, d, 4, cudaMemcpyDeviceToHost);
    const bool ok = double(h) == c.expect;
    bad += !ok && &c - cases < 3;
    std::printf("%-55s got %a expect %a %s\n", c.what, h, c.expect, ok ? "ok" : "DIFFERS");
  }
  std::printf("probe: %s\n", bad ? "subnormal bf16 inputs NOT kept" : "subnormal bf16 inputs kept");
  return 0;
}
