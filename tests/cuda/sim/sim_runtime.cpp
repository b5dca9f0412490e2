// The CPU simulator's scheduler and fake CUDA runtime (cuda_sim.h says what it is for). Single OS thread: blocks run
// one after another, the threads of a block as fibers switched by a dozen instructions of x86-64 assembly (no
// signal-mask system calls), so the CUDA test suites run in minutes on the CI machine's 2 cores.
#include <cuda_runtime_api.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "cuda_sim.h"

extern "C" void mmfp4_sim_switch(void** save_sp, void* load_sp);
extern "C" void mmfp4_sim_trampoline();
asm(R"(
  .text
  .globl mmfp4_sim_switch
  .type mmfp4_sim_switch, @function
mmfp4_sim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  subq $16, %rsp
  stmxcsr 8(%rsp)
  fnstcw (%rsp)
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  fldcw (%rsp)
  ldmxcsr 8(%rsp)
  addq $16, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size mmfp4_sim_switch, .-mmfp4_sim_switch
  .globl mmfp4_sim_trampoline
  .type mmfp4_sim_trampoline, @function
mmfp4_sim_trampoline:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size mmfp4_sim_trampoline, .-mmfp4_sim_trampoline
)");

namespace mmfp4::sim {
namespace {

constexpr size_t kStack = 256 << 10;
enum class St { Ready, Barrier, Warp, Done };
enum class Op { Shfl, Mma, Syncwarp, Ldmatrix };

struct Fiber {
  void* sp = nullptr;
  char* stack = nullptr;
  uint3 tid{};
  int linear = 0;
  St st = St::Ready;
  Op op = Op::Syncwarp;
  unsigned mask = 0;
  uint32_t in[6] = {};
  float fin[4] = {};
  int src = 0;
  bool f16 = false;
  const void* addr = nullptr;  // ldmatrix: this lane's row
  uint32_t out = 0;
  float fout[4] = {};
  int64_t spins = 0;  // spin_yield calls in this block
  // cp.async groups: committed ones in order, then the open one.
  std::vector<std::vector<std::pair<void*, const void*>>> groups;
  std::vector<std::pair<void*, const void*>> open;
};

struct State {
  std::vector<Fiber> fibers;
  int n = 0, cur = -1;
  void* main_sp = nullptr;
  const std::function<void()>* body = nullptr;
  uint3 block{};
  dim3 bdim{}, gdim{};
  std::vector<unsigned char> dyn;
  bool capturing = false;
  std::vector<std::function<void()>> captured;
  cudaError_t last = cudaSuccess;
  std::map<void*, size_t> allocs;
  size_t allocated = 0;
};
State& S() {
  static State s;
  return s;
}

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "CUDA simulator: %s (block %u,%u,%u)\n", m.c_str(), S().block.x, S().block.y, S().block.z);
  std::abort();
}

Fiber& me() {
  if (S().cur < 0) die("device function called outside a kernel");
  return S().fibers[size_t(S().cur)];
}
void yield() {
  Fiber& f = me();
  mmfp4_sim_switch(&f.sp, S().main_sp);
}

void fiber_entry(void*) {
  (*S().body)();
  me().st = St::Done;
  yield();
  die("a finished thread was resumed");
}

void* initial_sp(char* stack) {
  uintptr_t top = (reinterpret_cast<uintptr_t>(stack) + kStack) & ~uintptr_t(15);
  auto* sp = reinterpret_cast<uint64_t*>(top - 88);  // sp = 8 mod 16: the trampoline calls with an aligned stack
  uint16_t cw;
  uint32_t csr;
  asm volatile("fnstcw %0" : "=m"(cw));
  asm volatile("stmxcsr %0" : "=m"(csr));
  std::memset(sp, 0, 88);
  std::memcpy(reinterpret_cast<char*>(sp), &cw, 2);
  std::memcpy(reinterpret_cast<char*>(sp) + 8, &csr, 4);
  sp[4] = reinterpret_cast<uint64_t>(&fiber_entry);  // r13
  sp[5] = 0;                                         // r12
  sp[8] = reinterpret_cast<uint64_t>(&mmfp4_sim_trampoline);
  return sp;
}

float half_bits(uint32_t h, bool f16) {
  if (f16) return __half2float(__ushort_as_half(uint16_t(h)));
  return __uint_as_float((h & 0xFFFFu) << 16);
}

void do_mma(Fiber* const* L) {
  double A[16][16], B[16][8], C[16][8];
  const bool f16 = L[0]->f16;
  for (int l = 0; l < 32; ++l) {
    const Fiber& f = *L[l];
    if (f.f16 != f16) die("mma: lanes disagree on the operand type");
    const int g = l >> 2, c = l & 3;
    const int rows[4] = {g, g + 8, g, g + 8}, cols[4] = {2 * c, 2 * c, 2 * c + 8, 2 * c + 8};
    for (int r = 0; r < 4; ++r) {
      A[rows[r]][cols[r]] = half_bits(f.in[r], f16);
      A[rows[r]][cols[r] + 1] = half_bits(f.in[r] >> 16, f16);
    }
    B[2 * c][g] = half_bits(f.in[4], f16);
    B[2 * c + 1][g] = half_bits(f.in[4] >> 16, f16);
    B[2 * c + 8][g] = half_bits(f.in[5], f16);
    B[2 * c + 9][g] = half_bits(f.in[5] >> 16, f16);
    C[g][2 * c] = f.fin[0], C[g][2 * c + 1] = f.fin[1], C[g + 8][2 * c] = f.fin[2], C[g + 8][2 * c + 1] = f.fin[3];
  }
  for (int l = 0; l < 32; ++l) {
    const int g = l >> 2, c = l & 3;
    const int rr[4] = {g, g, g + 8, g + 8}, cc[4] = {2 * c, 2 * c + 1, 2 * c, 2 * c + 1};
    for (int i = 0; i < 4; ++i) {
      double s = C[rr[i]][cc[i]];
      for (int k = 0; k < 16; ++k) s += A[rr[i]][k] * B[k][cc[i]];
      L[l]->fout[i] = float(s);
    }
  }
}

// Resolves the collectives whose lanes have all arrived; returns whether any did.
bool resolve_warps() {
  State& s = S();
  bool any = false;
  for (int w = 0; w * 32 < s.n; ++w) {
    const int l0 = 32 * w, nl = std::min(32, s.n - l0);
    int first = -1;
    for (int l = 0; l < nl; ++l)
      if (s.fibers[size_t(l0 + l)].st == St::Warp) {
        first = l;
        break;
      }
    if (first < 0) continue;
    const Fiber& f0 = s.fibers[size_t(l0 + first)];
    const unsigned mask = f0.mask;
    Fiber* lanes[32] = {};
    bool polling = false;  // a lane of the mask is still polling (spin_yield): not yet
    for (int l = 0; l < 32; ++l) {
      if (!(mask >> l & 1)) continue;
      if (l >= nl) die("warp collective names a lane the block does not have");
      Fiber& f = s.fibers[size_t(l0 + l)];
      if (f.st == St::Done) die("warp collective waits for a lane that has exited");
      if (f.st == St::Ready && f.spins > 0) {
        polling = true;
        break;
      }
      if (f.st != St::Warp) die("warp collective: a lane of its mask waits at __syncthreads (divergence)");
      if (f.op != f0.op || f.mask != mask) die("lanes of a warp are at different collectives");
      lanes[l] = &f;
    }
    if (polling) continue;
    if (f0.op == Op::Mma) {
      if (mask != 0xffffffffu) die("mma.sync needs the whole warp");
      do_mma(lanes);
    } else if (f0.op == Op::Ldmatrix) {
      if (mask != 0xffffffffu) die("ldmatrix needs the whole warp");
      for (int l = 0; l < 32; ++l) {
        for (int i = 0; i < 4; ++i) {
          uint16_t e[2];
          for (int h = 0; h < 2; ++h) {
            // element (row, col) of matrix i; rows come from lanes 8i..8i+7
            const int row = lanes[l]->f16 ? 2 * (l % 4) + h : l / 4, col = lanes[l]->f16 ? l / 4 : 2 * (l % 4) + h;
            std::memcpy(&e[h], static_cast<const char*>(lanes[8 * i + row]->addr) + 2 * col, 2);
          }
          lanes[l]->fout[i] = __uint_as_float(uint32_t(e[0]) | uint32_t(e[1]) << 16);
        }
      }
    } else if (f0.op == Op::Shfl) {
      for (int l = 0; l < 32; ++l)
        if (lanes[l]) {
          const int src = lanes[l]->src;
          lanes[l]->out = (src >= 0 && src < 32 && lanes[src]) ? lanes[src]->in[0] : lanes[l]->in[0];
        }
    }
    for (int l = 0; l < 32; ++l)
      if (lanes[l]) lanes[l]->st = St::Ready;
    any = true;
  }
  return any;
}

std::mt19937_64& skew_rng() {
  static std::mt19937_64 g;
  return g;
}
uint64_t& round_count() {
  static uint64_t r = 0;
  return r;
}

void run_block() {
  State& s = S();
  const bool skew = skew_seed() != 0;
  std::vector<int> hold(size_t((s.n + 31) / 32), 0);  // rounds each warp is still held back (skew)
  for (int i = 0; i < s.n; ++i) {
    Fiber& f = s.fibers[size_t(i)];
    if (!f.stack) f.stack = static_cast<char*>(std::malloc(kStack));
    f.linear = i;
    f.tid = make_uint3(unsigned(i) % s.bdim.x, (unsigned(i) / s.bdim.x) % s.bdim.y, unsigned(i) / (s.bdim.x * s.bdim.y));
    f.st = St::Ready;
    f.spins = 0;
    f.sp = initial_sp(f.stack);
    f.groups.clear();
    f.open.clear();
  }
  for (;;) {
    for (int i = 0; i < s.n; ++i) {
      Fiber& f = s.fibers[size_t(i)];
      if (f.st != St::Ready || hold[size_t(i / 32)] > 0) continue;
      s.cur = i;
      mmfp4_sim_switch(&s.main_sp, f.sp);
      s.cur = -1;
    }
    ++round_count();
    if (skew)
      for (int& h : hold) {
        if (h > 0) --h;
        else if (skew_rand() % 4 == 0) h = 1 + int(skew_rand() % 64);
      }
    bool done = true, at_barrier = false;
    for (int i = 0; i < s.n; ++i) {
      done = done && s.fibers[size_t(i)].st == St::Done;
      at_barrier = at_barrier || s.fibers[size_t(i)].st == St::Barrier;
    }
    if (done) return;
    if (resolve_warps()) continue;
    bool polling = false;  // threads in spin_yield run again next round
    for (int i = 0; i < s.n; ++i) polling = polling || s.fibers[size_t(i)].st == St::Ready;
    if (polling) continue;
    for (int i = 0; i < s.n; ++i)
      if (s.fibers[size_t(i)].st == St::Warp) die("a warp collective can never complete");
    if (!at_barrier) die("deadlock");
    for (int i = 0; i < s.n; ++i)
      if (s.fibers[size_t(i)].st == St::Barrier) s.fibers[size_t(i)].st = St::Ready;
  }
}

void run(dim3 g, dim3 b, size_t smem, const std::function<void()>& body) {
  State& s = S();
  const int64_t nthreads = int64_t(b.x) * b.y * b.z;
  if (nthreads <= 0 || nthreads > 1024 || g.x == 0 || g.y == 0 || g.z == 0 || g.y > 65535 || g.z > 65535 ||
      smem > 227 * 1024) {
    s.last = cudaErrorInvalidConfiguration;
    return;
  }
  s.n = int(nthreads);
  if (s.fibers.size() < size_t(s.n)) s.fibers.resize(size_t(s.n));
  s.bdim = b;
  s.gdim = g;
  s.body = &body;
  for (unsigned z = 0; z < g.z; ++z)
    for (unsigned y = 0; y < g.y; ++y)
      for (unsigned x = 0; x < g.x; ++x) {
        s.block = make_uint3(x, y, z);
        s.dyn.assign(smem, 0xFF);  // NaN bytes: reading shared memory nobody wrote shows
        run_block();
      }
  s.body = nullptr;
}

struct Graph {
  std::vector<std::function<void()>> ops;
};

}  // namespace

uint32_t skew_seed() {
  static const uint32_t seed = [] {
    const char* e = std::getenv("MMFP4_SIM_SKEW");
    if (!e || !*e) return 0u;
    char* end = nullptr;
    const unsigned long v = std::strtoul(e, &end, 10);
    if (*end != '\0' || v == 0 || v > 0xFFFFFFFFul)
      die(std::string("MMFP4_SIM_SKEW must be a positive integer, got '") + e + "'");
    std::fprintf(stderr, "CUDA simulator: skewed scheduling, seed %lu\n", v);
    skew_rng().seed(v);
    return uint32_t(v);
  }();
  return seed;
}
uint64_t sched_round() { return round_count(); }
uint32_t skew_rand() { return uint32_t(skew_rng()() >> 32); }

uint3& thread_idx() { return me().tid; }
uint3& block_idx() { return S().block; }
dim3& block_dim() { return S().bdim; }
dim3& grid_dim() { return S().gdim; }
void* dyn_smem_ptr() { return S().dyn.data(); }
int lane_id() { return me().linear % 32; }

void syncthreads() {
  me().st = St::Barrier;
  yield();
}
void spin_yield() {
  Fiber& f = me();
  if (++f.spins > (int64_t(1) << 20)) die("a thread polls shared memory that never changes (mbarrier deadlock)");
  f.st = St::Ready;
  yield();
}
void syncwarp(unsigned mask) {
  Fiber& f = me();
  f.st = St::Warp;
  f.op = Op::Syncwarp;
  f.mask = mask;
  yield();
}
uint32_t shfl(unsigned mask, uint32_t v, int src) {
  Fiber& f = me();
  f.st = St::Warp;
  f.op = Op::Shfl;
  f.mask = mask;
  f.in[0] = v;
  f.src = src;
  yield();
  return me().out;
}
void ldmatrix_x4(uint32_t (&r)[4], const void* row, bool trans) {
  Fiber& f = me();
  f.st = St::Warp;
  f.op = Op::Ldmatrix;
  f.mask = 0xffffffffu;
  f.addr = row;
  f.f16 = trans;  // (the flag field doubles as .trans)
  yield();
  for (int i = 0; i < 4; ++i) r[i] = __float_as_uint(me().fout[i]);
}

void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1, bool f16) {
  Fiber& f = me();
  f.st = St::Warp;
  f.op = Op::Mma;
  f.mask = 0xffffffffu;
  for (int i = 0; i < 4; ++i) f.in[i] = a[i], f.fin[i] = d[i];
  f.in[4] = b0;
  f.in[5] = b1;
  f.f16 = f16;
  yield();
  for (int i = 0; i < 4; ++i) d[i] = me().fout[i];
}

void cp_async16(void* smem, const void* gmem) { me().open.emplace_back(smem, gmem); }
void cp_async_commit() {
  Fiber& f = me();
  f.groups.push_back(std::move(f.open));
  f.open.clear();
}
void cp_async_wait(int n) {
  Fiber& f = me();
  while (int(f.groups.size()) > n) {
    for (auto& [d, src] : f.groups.front()) std::memcpy(d, src, 16);
    f.groups.erase(f.groups.begin());
  }
}

void launch(dim3 grid, dim3 block, size_t smem, std::function<void()> body) {
  if (S().capturing) {
    S().captured.push_back([grid, block, smem, body]() { run(grid, block, smem, body); });
    return;
  }
  run(grid, block, smem, body);
}

}  // namespace mmfp4::sim

// ---------------------------------------------------------------------------------------------------------------
// The runtime API the backend and the tests call (device memory is host memory; everything is synchronous).
// ---------------------------------------------------------------------------------------------------------------
using mmfp4::sim::S;

extern "C" {

cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int) { return cudaSuccess; }
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  std::memset(p, 0, sizeof(*p));
  std::snprintf(p->name, sizeof(p->name), "CPU simulator (H100-shaped)");
  p->major = 9;
  p->minor = 0;
  p->multiProcessorCount = 132;
  p->totalGlobalMem = size_t(80) << 30;
  p->sharedMemPerBlock = 48 << 10;
  p->sharedMemPerBlockOptin = 227 << 10;
  p->sharedMemPerMultiprocessor = 228 << 10;
  p->regsPerBlock = 65536;
  p->maxThreadsPerBlock = 1024;
  p->l2CacheSize = 50 << 20;
  p->warpSize = 32;
  return cudaSuccess;
}
cudaError_t cudaGetLastError() {
  const cudaError_t e = S().last;
  S().last = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return S().last; }
const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    default: return "cudaError (simulator)";
  }
}
const char* cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) {
  *s = reinterpret_cast<cudaStream_t>(uintptr_t(0x5eed));
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamSynchronize(cudaStream_t) {
  return S().capturing ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
cudaError_t cudaMalloc(void** p, size_t n) {
  if (n > (size_t(64) << 30)) return cudaErrorMemoryAllocation;
  *p = std::aligned_alloc(256, (n + 255) / 256 * 256);
  if (!*p) return cudaErrorMemoryAllocation;
  S().allocs[*p] = n;
  S().allocated += n;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
  if (!p) return cudaSuccess;
  auto it = S().allocs.find(p);
  if (it != S().allocs.end()) {
    S().allocated -= it->second;
    S().allocs.erase(it);
  }
  std::free(p);
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* f, size_t* t) {
  *t = size_t(80) << 30;
  *f = *t - S().allocated;
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t n, cudaMemcpyKind, cudaStream_t) {
  if (S().capturing) {
    S().captured.push_back([dst, src, n]() { std::memcpy(dst, src, n); });
    return cudaSuccess;
  }
  std::memcpy(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t n, cudaMemcpyKind) {
  std::memcpy(dst, src, n);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int v, size_t n, cudaStream_t) {
  if (S().capturing) {
    S().captured.push_back([p, v, n]() { std::memset(p, v, n); });
    return cudaSuccess;
  }
  std::memset(p, v, n);
  return cudaSuccess;
}
cudaError_t cudaFuncSetAttribute(const void*, cudaFuncAttribute, int) { return cudaSuccess; }
cudaError_t cudaStreamBeginCapture(cudaStream_t, cudaStreamCaptureMode) {
  S().capturing = true;
  S().captured.clear();
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t, cudaGraph_t* g) {
  auto* graph = new mmfp4::sim::Graph{std::move(S().captured)};
  S().captured.clear();
  S().capturing = false;
  *g = reinterpret_cast<cudaGraph_t>(graph);
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) {
  *e = reinterpret_cast<cudaGraphExec_t>(new mmfp4::sim::Graph(*reinterpret_cast<mmfp4::sim::Graph*>(g)));
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t) {
  for (auto& op : reinterpret_cast<mmfp4::sim::Graph*>(e)->ops) op();
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
  delete reinterpret_cast<mmfp4::sim::Graph*>(e);
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
  delete reinterpret_cast<mmfp4::sim::Graph*>(g);
  return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
  *v = 13000;
  return cudaSuccess;
}

}  // extern "C"
