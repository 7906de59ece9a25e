// irlens native kernels: GEMM-based MatMul / Conv2D and depthwise convs, computed in place on the
// TF.js wasm backend's heap (an ArrayBuffer plus byte offsets handed over from JS; see src/engine/native/).
//
// Library choice (measured on the 2-core AMD EPYC with AVX-512, see bench/README.md): OpenBLAS 0.3.21 sgemm
// runs the dominant SwinIR product 4096x180x540 at ~190 GFLOP/s on one thread with its AVX-512 kernels
// (~105 with the AVX2 'Haswell' ones, tfjs-wasm 26.5), and it is the GEMM of the PyTorch we compare against.
// With oneDNN built in, every GEMM runs on its dnnl_sgemm instead (5-25% faster here; see sgemm()).
// Debian's native XNNPACK is a 2022 snapshot with an unstable API. Without oneDNN (below), convolutions are
// im2col (one block of rows at a time, per thread) + sgemm, which keeps everything on one well-kept GEMM.
// Depthwise convs run on oneDNN's NHWC depthwise kernels when it is built in, else on a direct loop (memory-bound;
// the compiler vectorises the channel loop).
//
// KxK convolutions (K > 1) go to oneDNN 2.6 when it was found at build time (IRLENS_HAVE_DNNL, see
// native/build.js): its AVX-512 'brgconv' kernels run the full-resolution MPRNet conv [1,128,128,128] x
// [3,3,128,128] in ~21 ms CPU on one thread against ~57 ms for im2col + sgemm (measured here). It is what PyTorch
// uses for the same convs. Activations are reordered into oneDNN's blocked layouts (see g_dnnlBlocked), except for
// depthwise convs, which stay NHWC; the small weights are reordered on every call (they change between training
// steps). Primitives are cached per shape and thread count.
//
// 3x3 stride-1 'same' convs with wide channels, and their input and filter gradients, run as Winograd F(2x2, 3x3) instead
// (native/winograd.cc: 0.55-0.7 of the direct conv's time on MPRNet's and SwinIR's shapes).
//
// Threads and determinism: the GEMM library runs single-threaded inside each of our threads, and work is split into
// a fixed number of contiguous parts (output rows, or whole batch items) that depends only on the shape and
// the thread count. No output element is summed by two threads, so the same inputs and thread count give
// bit-identical results.
#include <napi.h>
#include <cblas.h>
#include "winograd.h"
#include <omp.h>
#ifdef IRLENS_HAVE_DNNL
#include <dnnl.hpp>
#include <map>
#include <memory>
#include <tuple>
#endif

#include <pthread.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

namespace {

// Per JS thread: each Node worker that loads the addon sets its own count (data-parallel extraction runs one
// single-threaded worker per core), read only outside parallel regions.
thread_local int g_threads = 1;
bool g_dnnl = true;  // IRLENS_ONEDNN=0 at load time: every GEMM on OpenBLAS, every conv on im2col (A/B runs)
bool g_winograd = true;  // IRLENS_WINOGRAD=0 at load time keeps the 3x3 convs on the direct kernels (A/B)

enum Activation { kLinear = 0, kRelu = 1, kRelu6 = 2, kLeakyRelu = 3, kPrelu = 4, kSigmoid = 5, kElu = 6 };

// Bias and activation applied to `rows` rows of `n` channels, in place.
struct Epilogue {
  const float* bias = nullptr;  // length biasLen (1 or n), or null
  int64_t biasLen = 0;
  int act = kLinear;
  float alpha = 0.f;             // leakyrelu slope
  const float* prelu = nullptr;  // length preluLen (1 or n)
  int64_t preluLen = 0;

  bool active() const { return bias != nullptr || act != kLinear; }

  void apply(float* y, int64_t rows, int64_t n) const {
    for (int64_t r = 0; r < rows; r++) {
      float* row = y + r * n;
      if (bias) {
        if (biasLen == 1) {
          const float b = bias[0];
          for (int64_t c = 0; c < n; c++) row[c] += b;
        } else {
          for (int64_t c = 0; c < n; c++) row[c] += bias[c];
        }
      }
      switch (act) {
        case kLinear:
          break;
        case kRelu:
          for (int64_t c = 0; c < n; c++) row[c] = row[c] < 0.f ? 0.f : row[c];
          break;
        case kRelu6:
          for (int64_t c = 0; c < n; c++) row[c] = std::min(std::max(row[c], 0.f), 6.f);
          break;
        case kLeakyRelu:
          for (int64_t c = 0; c < n; c++) row[c] = row[c] < 0.f ? alpha * row[c] : row[c];
          break;
        case kPrelu:
          for (int64_t c = 0; c < n; c++) {
            const float a = preluLen == 1 ? prelu[0] : prelu[c];
            row[c] = row[c] < 0.f ? a * row[c] : row[c];
          }
          break;
        case kSigmoid:
          for (int64_t c = 0; c < n; c++) row[c] = 1.f / (1.f + std::exp(-row[c]));
          break;
        case kElu:
          for (int64_t c = 0; c < n; c++) row[c] = row[c] < 0.f ? std::expm1(row[c]) : row[c];
          break;
      }
    }
  }
};

// Contiguous part t of [0, total) split into `parts` near-equal pieces.
inline void part(int64_t total, int parts, int t, int64_t* begin, int64_t* end) {
  const int64_t base = total / parts, extra = total % parts;
  *begin = t * base + std::min<int64_t>(t, extra);
  *end = *begin + base + (t < extra ? 1 : 0);
}

// Signals wait while native code runs. oneDNN 2.6's AVX-512 f32 GEMM kernel (dnnl_sgemm, and the gemm-based
// primitives) points the stack pointer into heap memory while it runs, so a signal handled on that thread writes
// its frame into the heap (oneDNN issue #4845, fixed in 3.11.2; Debian ships 2.6.3). Node handles signals all
// the time: libuv's handlers for SIGCHLD, SIGINT, SIGWINCH and any process.on('SIG...'), V8's profiler's SIGPROF.
// Measured here before this guard: SIGUSR2 with a JS handler sent during native matmuls aborted the process with
// "corrupted size vs. prev_size" in 3 of 3 runs, as did `node --cpu-prof` on a training step
// (test/engine/native-signals.test.ts). The synchronous fault signals stay open: they cannot wait.
sigset_t deferredSignals() {
  sigset_t s;
  sigfillset(&s);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT}) sigdelset(&s, sig);
  return s;
}

// Blocks the deferred signals on the calling (JS) thread for one native call; they are delivered when it returns.
// OpenMP's pool threads are created inside such calls and inherit the mask.
class SignalsDeferred {
 public:
  SignalsDeferred() {
    const sigset_t s = deferredSignals();
    pthread_sigmask(SIG_BLOCK, &s, &previous_);
  }
  ~SignalsDeferred() { pthread_sigmask(SIG_SETMASK, &previous_, nullptr); }
  SignalsDeferred(const SignalsDeferred&) = delete;
  SignalsDeferred& operator=(const SignalsDeferred&) = delete;

 private:
  sigset_t previous_;
};

// A pool thread blocks the deferred signals for good the first time it runs a part (in case one was created
// outside a guarded call): it runs nothing but kernels, and the process's other threads take the signals.
inline void deferSignalsOnPoolThread() {
  thread_local bool deferred = false;
  if (deferred || omp_get_thread_num() == 0) return;
  const sigset_t s = deferredSignals();
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  deferred = true;
}

// Runs body(t, parts) on `parts` threads (part 0 on the calling thread when parts == 1).
template <typename F>
void parallel(int parts, F body) {
  if (parts <= 1) {
    body(0, 1);
    return;
  }
#pragma omp parallel num_threads(parts)
  {
    deferSignalsOnPoolThread();
    // OpenMP may hand us fewer threads than asked: loop so every part still runs exactly once, on some thread.
    const int nt = omp_get_num_threads();
    for (int t = omp_get_thread_num(); t < parts; t += nt) body(t, parts);
  }
}

// Threads for a memory-bound pass over `elements` values in `units` pieces: one below 64K elements (waking a
// thread costs more than it saves), never more than there are pieces.
int streamThreads(int64_t elements, int64_t units) {
  return static_cast<int>(std::min<int64_t>(elements < (1 << 16) ? 1 : g_threads, std::max<int64_t>(units, 1)));
}

int threadsFor(double flops) {
  // Below ~4 MFLOP (tens of microseconds) waking a sleeping thread costs more than it saves.
  return flops < 4e6 ? 1 : g_threads;
}

// Row-major C = alpha op(A) op(B) on the calling thread: oneDNN's sgemm when the addon has it (and
// IRLENS_ONEDNN is not 0), else OpenBLAS. oneDNN's runs irlens's products 5-25% faster than OpenBLAS 0.3.21 on
// one AVX-512 core here (4096x180x540 105 vs 94 GFLOP/s, 16384x96x510 103 vs 83, 16384x48x144 93 vs 73; tiny
// window-attention products within 10%). Every product of the addon goes through here, so the fused kernels
// and the compositions they replace (per-head attention in hooked runs) round alike. Its thread count is
// pinned to 1: our parts split the work, as with OpenBLAS.
inline void sgemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float* A, int64_t lda, const float* B, int64_t ldb,
                  float* C, int64_t ldc) {
#ifdef IRLENS_HAVE_DNNL
  if (g_dnnl) {
    omp_set_num_threads(1);
    dnnl_sgemm(ta ? 'T' : 'N', tb ? 'T' : 'N', m, n, k, alpha, A, lda, B, ldb, 0.f, C, ldc);
    return;
  }
#endif
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m), static_cast<int>(n),
              static_cast<int>(k), alpha, A, static_cast<int>(lda), B, static_cast<int>(ldb), 0.f, C, static_cast<int>(ldc));
}

// ------------------------------------------------------------------------------------------- arguments

struct Args {
  SignalsDeferred signals;  // first member: held from before the arguments are read until the kernel returns
  const Napi::CallbackInfo& info;
  uint8_t* heap;
  size_t heapBytes;
  std::vector<double> p;

  explicit Args(const Napi::CallbackInfo& i) : info(i) {
    if (i.Length() < 2 || !i[0].IsArrayBuffer() || !i[1].IsTypedArray())
      throw Napi::TypeError::New(i.Env(), "irlens native: expected (ArrayBuffer, Float64Array params)");
    Napi::ArrayBuffer buf = i[0].As<Napi::ArrayBuffer>();
    heap = static_cast<uint8_t*>(buf.Data());
    heapBytes = buf.ByteLength();
    Napi::Float64Array params = i[1].As<Napi::Float64Array>();
    p.assign(params.Data(), params.Data() + params.ElementLength());
  }
  int64_t i64(size_t k) const { return static_cast<int64_t>(p.at(k)); }
  // A float32 view of `count` elements at byte offset p[k]; checks bounds so bad offsets cannot corrupt memory.
  float* f32(size_t k, int64_t count) const {
    const int64_t off = i64(k);
    if (off < 0 || off % 4 != 0 || count < 0 || static_cast<uint64_t>(off) + 4ull * count > heapBytes)
      throw Napi::RangeError::New(info.Env(), "irlens native: tensor offset outside the wasm heap");
    return reinterpret_cast<float*>(heap + off);
  }
  // Epilogue from params starting at k: biasOff, biasLen, act, alpha, preluOff, preluLen (offset -1 = none).
  Epilogue epilogue(size_t k) const {
    Epilogue e;
    if (i64(k) >= 0) {
      e.biasLen = i64(k + 1);
      e.bias = f32(k, e.biasLen);
    }
    e.act = static_cast<int>(i64(k + 2));
    e.alpha = static_cast<float>(p.at(k + 3));
    if (i64(k + 4) >= 0) {
      e.preluLen = i64(k + 5);
      e.prelu = f32(k + 4, e.preluLen);
    }
    return e;
  }
};

// ------------------------------------------------------------------------------------------------ GEMM

// C[b] = op(A[aIdx[b]]) op(B[bIdx[b]]) (+ epilogue) for b < batches. params:
// 0 aOff, 1 bOff, 2 cOff, 3 batches, 4 aBatches, 5 bBatches, 6 m, 7 n, 8 k, 9 transA, 10 transB, 11.. epilogue;
// info[2], info[3]: Int32Array batch indices into A and B per output batch (broadcasting).
Napi::Value MatMul(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t batches = a.i64(3), aBatches = a.i64(4), bBatches = a.i64(5);
  const int64_t m = a.i64(6), n = a.i64(7), k = a.i64(8);
  const bool ta = a.i64(9) != 0, tb = a.i64(10) != 0;
  const float* A = a.f32(0, aBatches * m * k);
  const float* B = a.f32(1, bBatches * k * n);
  float* C = a.f32(2, batches * m * n);
  const Epilogue ep = a.epilogue(11);
  Napi::Int32Array aIdx = info[2].As<Napi::Int32Array>(), bIdx = info[3].As<Napi::Int32Array>();
  if (static_cast<int64_t>(aIdx.ElementLength()) != batches || static_cast<int64_t>(bIdx.ElementLength()) != batches)
    throw Napi::RangeError::New(info.Env(), "irlens native: batch index arrays do not match the batch count");
  const int32_t* ai = aIdx.Data();
  const int32_t* bi = bIdx.Data();
  for (int64_t b = 0; b < batches; b++)
    if (ai[b] < 0 || ai[b] >= aBatches || bi[b] < 0 || bi[b] >= bBatches)
      throw Napi::RangeError::New(info.Env(), "irlens native: batch index out of range");
  const int lda = static_cast<int>(ta ? m : k), ldb = static_cast<int>(tb ? k : n);
  const int threads = threadsFor(2.0 * batches * m * n * k);
  // Work units: whole batch items when there are enough of them, else row blocks (or column blocks when the
  // product is wide and short) of each item. Fixed by shape and thread count.
  const int64_t splits = batches >= threads ? 1 : (threads + batches - 1) / batches;
  const bool splitCols = splits > 1 && n > m;
  const int64_t units = batches * splits;
  parallel(static_cast<int>(std::min<int64_t>(threads, units)), [&](int t, int parts) {
    int64_t u0, u1;
    part(units, parts, t, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
      const int64_t b = u / splits, s = u % splits;
      int64_t r0 = 0, r1 = m, c0 = 0, c1 = n;
      if (splitCols) part(n, static_cast<int>(splits), static_cast<int>(s), &c0, &c1);
      else part(m, static_cast<int>(splits), static_cast<int>(s), &r0, &r1);
      if (r1 <= r0 || c1 <= c0) continue;
      const float* Ab = A + ai[b] * m * k + (ta ? r0 : r0 * k);
      const float* Bb = B + bi[b] * k * n + (tb ? c0 * k : c0);
      float* Cb = C + b * m * n + r0 * n + c0;
      if (k == 0) {
        for (int64_t r = 0; r < r1 - r0; r++) std::fill(Cb + r * n, Cb + r * n + (c1 - c0), 0.f);
      } else {
        sgemm(ta, tb, r1 - r0, c1 - c0, k, 1.f, Ab, lda, Bb, ldb, Cb, n);
      }
      if (ep.active()) {
        if (c0 == 0 && c1 == n) ep.apply(Cb, r1 - r0, n);
        else {
          // Column block: apply per row with the bias/prelu slice of these columns.
          Epilogue sub = ep;
          if (sub.bias && sub.biasLen > 1) sub.bias += c0;
          if (sub.prelu && sub.preluLen > 1) sub.prelu += c0;
          for (int64_t r = 0; r < r1 - r0; r++) sub.apply(Cb + r * n, 1, c1 - c0);
        }
      }
    }
  });
  return info.Env().Undefined();
}

// ------------------------------------------------------------------------------------------------ conv

enum BackwardKind { kBackwardData = 0, kBackwardWeights = 1 };

struct ConvShape {
  int64_t n, h, w, ci, kh, kw, co, oh, ow, sh, sw, dh, dw, top, left;
};

ConvShape convShape(const Args& a, size_t k) {
  ConvShape s{};
  int64_t* f[] = {&s.n, &s.h, &s.w, &s.ci, &s.kh, &s.kw, &s.co, &s.oh, &s.ow, &s.sh, &s.sw, &s.dh, &s.dw, &s.top, &s.left};
  for (size_t i = 0; i < 15; i++) *f[i] = a.i64(k + i);
  return s;
}

// A 3x3, stride-1, undilated conv padded by 1 on every side with channel counts where Winograd F(2x2, 3x3)
// beats the direct kernels (native/winograd.cc): the bulk of MPRNet, and SwinIR's and EDT's body convs.
bool winogradConv(const ConvShape& s) {
  return g_winograd && s.kh == 3 && s.kw == 3 && s.sh == 1 && s.sw == 1 && s.dh == 1 && s.dw == 1 && s.top == 1 &&
         s.left == 1 && s.oh == s.h && s.ow == s.w && irlens::winogradPays(s.n, s.h, s.w, s.ci, s.co);
}

void pixelEpilogue(const void* ctx, float* pixel, int64_t channels) { static_cast<const Epilogue*>(ctx)->apply(pixel, 1, channels); }

// Rows [r0, r1) of the im2col matrix (row = output pixel, columns = kh*kw*ci taps, zeros outside the input).
void im2col(const float* x, const ConvShape& s, int64_t r0, int64_t r1, float* out) {
  const int64_t kdim = s.kh * s.kw * s.ci;
  for (int64_t r = r0; r < r1; r++) {
    const int64_t b = r / (s.oh * s.ow), rem = r % (s.oh * s.ow), oy = rem / s.ow, ox = rem % s.ow;
    float* dst = out + (r - r0) * kdim;
    for (int64_t i = 0; i < s.kh; i++) {
      const int64_t iy = oy * s.sh + i * s.dh - s.top;
      for (int64_t j = 0; j < s.kw; j++, dst += s.ci) {
        const int64_t ix = ox * s.sw + j * s.dw - s.left;
        if (iy < 0 || iy >= s.h || ix < 0 || ix >= s.w) std::fill(dst, dst + s.ci, 0.f);
        else std::memcpy(dst, x + ((b * s.h + iy) * s.w + ix) * s.ci, s.ci * sizeof(float));
      }
    }
  }
}

#ifdef IRLENS_HAVE_DNNL
dnnl::engine& dnnlEngine() {
  static dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// Activations in oneDNN's blocked layouts (nChw8c / nChw16c, as PyTorch's mkldnn convs run them) instead of
// NHWC: the jit:avx2 3x3 conv [1,128,128,128] runs in ~65 ms instead of ~95 ms on one core here, for two reorders
// of a few ms. IRLENS_ONEDNN_BLOCKED=0 keeps NHWC (A/B measurements).
bool g_dnnlBlocked = true;

bool avx512Core() {
  const unsigned isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa()), core = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
  return (isa & core) == core;
}

// Scratch for activations reordered into a primitive's layout: one growing buffer per role and thread, so the
// primitive cache does not hold activation-sized memory per shape.
float* scratch(int role, size_t bytes) {
  thread_local std::vector<float> buffers[3];
  std::vector<float>& b = buffers[role];
  if (b.size() * sizeof(float) < bytes) b.resize((bytes + sizeof(float) - 1) / sizeof(float));
  return b.data();
}

// An activation as the primitive wants it: the user's NHWC memory itself, or a scratch copy in the primitive's
// layout with the reorder between them.
struct Staged {
  dnnl::memory::desc user, prim;
  bool reordered = false;
  dnnl::reorder toPrim, fromPrim;

  Staged() = default;
  Staged(const dnnl::memory::desc& u, const dnnl::memory::desc& p, bool input) : user(u), prim(p), reordered(u != p) {
    if (!reordered) return;
    const dnnl::memory a(u, dnnlEngine(), nullptr), b(p, dnnlEngine(), nullptr);
    if (input) toPrim = dnnl::reorder(a, b);
    else fromPrim = dnnl::reorder(b, a);
  }
  // The memory the primitive reads (an input: reordered from `data` now) or writes (an output: call finish()).
  dnnl::memory bind(dnnl::stream& stream, float* data, int role) const {
    dnnl::memory u(user, dnnlEngine(), data);
    if (!reordered) return u;
    dnnl::memory p(prim, dnnlEngine(), scratch(role, prim.get_size()));
    if (toPrim) toPrim.execute(stream, u, p);
    return p;
  }
  void finish(dnnl::stream& stream, dnnl::memory& p, float* data) const {
    dnnl::memory u(user, dnnlEngine(), data);
    if (reordered) fromPrim.execute(stream, p, u);
  }
};

// One cached oneDNN forward convolution: the primitive, its activations' staging and the reorder of HWIO
// weights into its layout.
struct DnnlConv {
  dnnl::convolution_forward conv;
  Staged src, dst;
  dnnl::memory::desc userWeights;
  dnnl::memory weights;  // in the primitive's layout, owned by oneDNN
  dnnl::reorder toWeights;
};

// oneDNN memory descriptors of a convolution as TF lays it out: NHWC activations; HWIO weights, or for a
// depthwise conv (groups = channels, co = multiplier) TF's [kh, kw, c, mult] as oneDNN's grouped
// {g, mult, 1, kh, kw} with explicit strides. Paddings as in dnnlConv.
struct DnnlGeometry {
  dnnl::memory::desc src, dst, userWeights, anyWeights;
  dnnl::memory::dims strides, dilates, padL, padR;
};

DnnlGeometry dnnlGeometry(const ConvShape& s, bool depthwise) {
  using dnnl::memory;
  DnnlGeometry g;
  const int64_t outC = depthwise ? s.ci * s.co : s.co;
  g.src = memory::desc({s.n, s.ci, s.h, s.w}, memory::data_type::f32, memory::format_tag::nhwc);
  g.dst = memory::desc({s.n, outC, s.oh, s.ow}, memory::data_type::f32, memory::format_tag::nhwc);
  if (depthwise) {
    const memory::dims dims{s.ci, s.co, 1, s.kh, s.kw};
    g.userWeights = memory::desc(dims, memory::data_type::f32, memory::dims{s.co, 1, 1, s.kw * s.ci * s.co, s.ci * s.co});
    g.anyWeights = memory::desc(dims, memory::data_type::f32, memory::format_tag::any);
  } else {
    const memory::dims dims{s.co, s.ci, s.kh, s.kw};
    g.userWeights = memory::desc(dims, memory::data_type::f32, memory::format_tag::hwio);
    g.anyWeights = memory::desc(dims, memory::data_type::f32, memory::format_tag::any);
  }
  g.strides = {s.sh, s.sw};
  g.dilates = {s.dh - 1, s.dw - 1};
  g.padL = {s.top, s.left};
  g.padR = {(s.oh - 1) * s.sh + (s.kh - 1) * s.dh + 1 - s.h - s.top, (s.ow - 1) * s.sw + (s.kw - 1) * s.dw + 1 - s.w - s.left};
  return g;
}

// Computes y = conv(x, f) (or the depthwise conv) with oneDNN; false when oneDNN has no implementation but its
// reference loop for the shape (then im2col or the depthwise loop runs).
// oneDNN's OpenMP regions use the calling thread's omp max-threads, so it is set to `threads` for both the
// primitive's creation (its work split depends on it) and its execution. Each oneDNN forward output element is
// reduced by one thread in a fixed order, so the same inputs and thread count give bit-identical results.
bool dnnlConv(const ConvShape& s, bool depthwise, const float* x, const float* f, float* y, int threads) {
  using dnnl::memory;
  using Key = std::tuple<bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int>;
  // thread_local: Node worker threads may each load the addon's functions; they never share a cache entry.
  thread_local std::map<Key, std::unique_ptr<DnnlConv>> cache;
  thread_local std::map<Key, bool> unsupported;
  const Key key{depthwise, s.n, s.h, s.w, s.ci, s.kh, s.kw, s.co, s.oh, s.ow, s.sh, s.sw, s.dh, s.dw, s.top, s.left, threads};
  if (unsupported.count(key)) return false;
  omp_set_num_threads(threads);
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= 256) cache.clear();  // bounded: each entry holds a weights buffer (many input sizes)
    try {
      const DnnlGeometry g = dnnlGeometry(s, depthwise);
      // Depthwise convs stay on NHWC, where oneDNN's jit_dw kernels need no reorders (see dnnlBackward).
      const bool blocked = g_dnnlBlocked && !depthwise;
      const memory::desc anySrc = blocked ? memory::desc(g.src.dims(), memory::data_type::f32, memory::format_tag::any) : g.src;
      const memory::desc anyDst = blocked ? memory::desc(g.dst.dims(), memory::data_type::f32, memory::format_tag::any) : g.dst;
      const dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                              anySrc, g.anyWeights, anyDst, g.strides, g.dilates, g.padL, g.padR);
      const dnnl::convolution_forward::primitive_desc pd(d, dnnlEngine());
      if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) throw dnnl::error(dnnl_unimplemented, "reference only");
      auto c = std::make_unique<DnnlConv>();
      c->conv = dnnl::convolution_forward(pd);
      c->src = Staged(g.src, pd.src_desc(), true);
      c->dst = Staged(g.dst, pd.dst_desc(), false);
      c->userWeights = g.userWeights;
      c->weights = memory(pd.weights_desc(), dnnlEngine());
      c->toWeights = dnnl::reorder(memory(c->userWeights, dnnlEngine(), nullptr), c->weights);
      it = cache.emplace(key, std::move(c)).first;
    } catch (const dnnl::error&) {
      unsupported[key] = true;
      return false;
    }
  }
  DnnlConv& c = *it->second;
  dnnl::stream stream(dnnlEngine());
  memory src = c.src.bind(stream, const_cast<float*>(x), 0);
  memory dst = c.dst.bind(stream, y, 1);
  memory userWeights(c.userWeights, dnnlEngine(), const_cast<float*>(f));
  c.toWeights.execute(stream, userWeights, c.weights);
  c.conv.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, c.weights}, {DNNL_ARG_DST, dst}});
  c.dst.finish(stream, dst, y);
  stream.wait();
  return true;
}

// One cached backward primitive: data (dx from dy and weights) or weights (dW from x and dy), with the
// reorder between TF's weight layout and the primitive's.
struct DnnlBackward {
  dnnl::primitive prim;
  Staged src, dst;  // x or dx, dy: in the primitive's layouts (blocked, as the forward)
  dnnl::memory::desc userWeights;
  dnnl::memory weights;  // primitive layout: the weights (data) or the weight gradient (weights)
  dnnl::reorder reorder; // user -> primitive (data) or primitive -> user (weights)
  std::string impl;      // oneDNN's implementation name (jit_dw:avx512_core, ...)
};

// Builds the backward primitive on NHWC activations or (blocked) on the layouts oneDNN prefers; throws
// dnnl::error when oneDNN has nothing but its reference loop for them.
std::unique_ptr<DnnlBackward> dnnlBackwardPrimitive(BackwardKind kind, const DnnlGeometry& g, bool blocked) {
  using dnnl::memory;
  auto c = std::make_unique<DnnlBackward>();
  c->userWeights = g.userWeights;
  const memory::desc anySrc = blocked ? memory::desc(g.src.dims(), memory::data_type::f32, memory::format_tag::any) : g.src;
  const memory::desc anyDst = blocked ? memory::desc(g.dst.dims(), memory::data_type::f32, memory::format_tag::any) : g.dst;
  const dnnl::convolution_forward::desc fd(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                           anySrc, g.anyWeights, anyDst, g.strides, g.dilates, g.padL, g.padR);
  const dnnl::convolution_forward::primitive_desc fpd(fd, dnnlEngine());
  if (kind == kBackwardData) {
    const dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, anySrc, g.anyWeights, anyDst,
                                                  g.strides, g.dilates, g.padL, g.padR);
    const dnnl::convolution_backward_data::primitive_desc pd(d, dnnlEngine(), fpd);
    c->impl = pd.impl_info_str();
    if (c->impl.rfind("ref", 0) == 0) throw dnnl::error(dnnl_unimplemented, "reference only");
    c->prim = dnnl::convolution_backward_data(pd);
    c->src = Staged(g.src, pd.diff_src_desc(), false);
    c->dst = Staged(g.dst, pd.diff_dst_desc(), true);
    c->weights = memory(pd.weights_desc(), dnnlEngine());
    c->reorder = dnnl::reorder(memory(g.userWeights, dnnlEngine(), nullptr), c->weights);
  } else {
    const dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, anySrc, g.anyWeights, anyDst,
                                                     g.strides, g.dilates, g.padL, g.padR);
    const dnnl::convolution_backward_weights::primitive_desc pd(d, dnnlEngine(), fpd);
    c->impl = pd.impl_info_str();
    if (c->impl.rfind("ref", 0) == 0) throw dnnl::error(dnnl_unimplemented, "reference only");
    c->prim = dnnl::convolution_backward_weights(pd);
    c->src = Staged(g.src, pd.src_desc(), true);
    c->dst = Staged(g.dst, pd.diff_dst_desc(), true);
    c->weights = memory(pd.diff_weights_desc(), dnnlEngine());
    c->reorder = dnnl::reorder(c->weights, memory(g.userWeights, dnnlEngine(), nullptr));
  }
  return c;
}

// dx = conv^T(dy, f) or dW = corr(x, dy) with oneDNN; false when oneDNN has only its reference loop (or nothing)
// for the shape: then the gradient compositions run (src/engine/wasm/conv-grads.ts on the native forward kernels).
// Determinism: oneDNN's backward-data kernels compute each dx element on one thread; the backward-weights
// kernels split the reduction over image rows / batch items by a partition fixed by shape and thread count and
// add the partial sums in thread order, so results repeat bit for bit at a given thread count (tested).
bool dnnlBackward(BackwardKind kind, const ConvShape& s, bool depthwise, const float* a, const float* b, float* out, int threads) {
  using dnnl::memory;
  using Key = std::tuple<int, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int>;
  thread_local std::map<Key, std::unique_ptr<DnnlBackward>> cache;
  thread_local std::map<Key, bool> unsupported;
  const Key key{kind, depthwise, s.n, s.h, s.w, s.ci, s.kh, s.kw, s.co, s.oh, s.ow, s.sh, s.sw, s.dh, s.dw, s.top, s.left, threads};
  if (unsupported.count(key)) return false;
  omp_set_num_threads(threads);
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= 256) cache.clear();
    // Layouts to try, best first. Depthwise: only oneDNN's depthwise kernels (jit_dw), on NHWC, where they need
    // no reorders (the backward of the dw 3x3 on [1,64,64,510]: ~3.4 ms on NHWC, ~7 ms blocked, of which ~5 ms
    // are the reorders), else blocked. oneDNN 2.6 has no jit_dw backward-weights kernel for 5x5 and offers
    // generic grouped kernels instead: for [1,48,48,360] they take 9-20 ms, irlens's composition ~1.7 ms.
    // Other convs: on AVX-512 cores NHWC, where oneDNN's backward kernels run as fast as on the blocked layout
    // (and its forward picks NHWC brgconv itself): the reorders cost ~12% of MPRNet's conv-gradient time there.
    // Else blocked, as the forward (on AVX2 the blocked jit kernels are ~1.5x faster than NHWC ones).
    struct Candidate {
      bool blocked, needDepthwiseKernel;
    };
    std::vector<Candidate> candidates;
    if (depthwise) candidates = {{false, true}, {true, true}};
    else if (avx512Core() || !g_dnnlBlocked) candidates = {{false, false}, {true, false}};
    else candidates = {{true, false}};
    const DnnlGeometry g = dnnlGeometry(s, depthwise);
    for (const Candidate& cand : candidates) {
      try {
        std::unique_ptr<DnnlBackward> c = dnnlBackwardPrimitive(kind, g, cand.blocked);
        if (cand.needDepthwiseKernel && c->impl.find("_dw") == std::string::npos) continue;
        it = cache.emplace(key, std::move(c)).first;
        break;
      } catch (const dnnl::error&) {
      }
    }
    if (it == cache.end()) {
      unsupported[key] = true;
      return false;
    }
  }
  DnnlBackward& c = *it->second;
  dnnl::stream stream(dnnlEngine());
  if (kind == kBackwardData) {
    // a = dy, b = filter, out = dx
    memory dy = c.dst.bind(stream, const_cast<float*>(a), 0);
    memory dx = c.src.bind(stream, out, 1);
    memory userWeights(c.userWeights, dnnlEngine(), const_cast<float*>(b));
    c.reorder.execute(stream, userWeights, c.weights);
    c.prim.execute(stream, {{DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_WEIGHTS, c.weights}, {DNNL_ARG_DIFF_SRC, dx}});
    c.src.finish(stream, dx, out);
  } else {
    // a = x, b = dy, out = dW
    memory x = c.src.bind(stream, const_cast<float*>(a), 0);
    memory dy = c.dst.bind(stream, const_cast<float*>(b), 1);
    memory userWeights(c.userWeights, dnnlEngine(), out);
    c.prim.execute(stream, {{DNNL_ARG_SRC, x}, {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_WEIGHTS, c.weights}});
    c.reorder.execute(stream, c.weights, userWeights);
  }
  stream.wait();
  return true;
}
#endif

// Conv2D / depthwise gradients on oneDNN. params: 0 aOff, 1 bOff, 2 outOff, 3..17 shape (as Conv2D: the
// forward conv's geometry; co = multiplier when depthwise), 18 kind (0 data: a = dy, b = filter, out = dx;
// 1 weights: a = x, b = dy, out = dW), 19 depthwise. Returns false when it did not compute (no oneDNN, or only
// oneDNN's reference loop for the shape): the caller runs the gradient composition instead.
Napi::Value ConvBackward(const Napi::CallbackInfo& info) {
  Args a(info);
  const ConvShape s = convShape(a, 3);
  const BackwardKind kind = a.i64(18) == 0 ? kBackwardData : kBackwardWeights;
  const bool depthwise = a.i64(19) != 0;
  const int64_t outC = depthwise ? s.ci * s.co : s.co;
  const int64_t xCount = s.n * s.h * s.w * s.ci, dyCount = s.n * s.oh * s.ow * outC;
  const int64_t fCount = s.kh * s.kw * s.ci * s.co;  // [kh, kw, ci, co] or depthwise [kh, kw, c, mult]
  const float* in0 = a.f32(0, kind == kBackwardData ? dyCount : xCount);
  const float* in1 = a.f32(1, kind == kBackwardData ? fCount : dyCount);
  float* out = a.f32(2, kind == kBackwardData ? xCount : fCount);
  if (!depthwise && winogradConv(s)) {
    const int threads = threadsFor(2.0 * xCount * s.co * 9);
    // dx is the 3x3 'same' conv of dy with the filter flipped and transposed; dW sums the tap products.
    if (kind == kBackwardData) irlens::winograd3x3(in0, in1, out, s.n, s.h, s.w, s.co, s.ci, true, threads, g_dnnl, nullptr, nullptr);
    else irlens::winograd3x3FilterGradient(in0, in1, out, s.n, s.h, s.w, s.ci, s.co, threads, g_dnnl);
    return Napi::Boolean::New(info.Env(), true);
  }
#ifdef IRLENS_HAVE_DNNL
  if (g_dnnl && xCount > 0 && dyCount > 0 && fCount > 0) {
    const double flops = 2.0 * s.n * s.oh * s.ow * outC * s.kh * s.kw * (depthwise ? 1 : s.ci);
    const int threads = static_cast<int>(std::min<int64_t>(threadsFor(flops), std::max<int64_t>(s.n * s.oh, 1)));
    return Napi::Boolean::New(info.Env(), dnnlBackward(kind, s, depthwise, in0, in1, out, threads));
  }
#else
  (void)in0;
  (void)in1;
  (void)out;
#endif
  return Napi::Boolean::New(info.Env(), false);
}

// y = conv(x, f) (+ epilogue), NHWC x, HWIO f. params: 0 xOff, 1 fOff, 2 yOff, 3..17 shape, 18.. epilogue.
Napi::Value Conv2D(const Napi::CallbackInfo& info) {
  Args a(info);
  const ConvShape s = convShape(a, 3);
  const float* x = a.f32(0, s.n * s.h * s.w * s.ci);
  const float* f = a.f32(1, s.kh * s.kw * s.ci * s.co);
  float* y = a.f32(2, s.n * s.oh * s.ow * s.co);
  const Epilogue ep = a.epilogue(18);
  const int64_t rows = s.n * s.oh * s.ow, kdim = s.kh * s.kw * s.ci;
  const bool direct = s.kh == 1 && s.kw == 1 && s.sh == 1 && s.sw == 1 && s.top == 0 && s.left == 0 &&
                      s.oh == s.h && s.ow == s.w;  // a 1x1 conv is a plain product with x as A
  const int threads = static_cast<int>(std::min<int64_t>(threadsFor(2.0 * rows * kdim * s.co), std::max<int64_t>(rows, 1)));
  if (winogradConv(s)) {
    irlens::winograd3x3(x, f, y, s.n, s.h, s.w, s.ci, s.co, false, threads, g_dnnl, ep.active() ? pixelEpilogue : nullptr, &ep);
    return info.Env().Undefined();
  }
#ifdef IRLENS_HAVE_DNNL
  // KxK kernels (the gradient compositions' image-sized "filters" stay on im2col, which suits them).
  if (g_dnnl && !direct && kdim > 0 && s.kh * s.kw > 1 && s.kh <= 11 && s.kw <= 11 && dnnlConv(s, false, x, f, y, threads)) {
    if (ep.active()) {
      parallel(threads, [&](int t, int parts) {
        int64_t r0, r1;
        part(rows, parts, t, &r0, &r1);
        ep.apply(y + r0 * s.co, r1 - r0, s.co);
      });
    }
    return info.Env().Undefined();
  }
#endif
  // im2col block: about 1 MiB of patches per GEMM call keeps the block in L2 and the GEMM efficient.
  const int64_t block = std::max<int64_t>(64, (1 << 18) / std::max<int64_t>(kdim, 1));
  parallel(threads, [&](int t, int parts) {
    int64_t r0, r1;
    part(rows, parts, t, &r0, &r1);
    std::vector<float> patches;
    for (int64_t b0 = r0; b0 < r1; b0 += block) {
      const int64_t b1 = std::min(r1, b0 + block);
      const float* A;
      if (direct) A = x + b0 * s.ci;
      else {
        patches.resize(static_cast<size_t>((b1 - b0) * kdim));
        im2col(x, s, b0, b1, patches.data());
        A = patches.data();
      }
      float* Y = y + b0 * s.co;
      if (kdim == 0) std::fill(Y, Y + (b1 - b0) * s.co, 0.f);
      else
        sgemm(false, false, b1 - b0, s.co, kdim, 1.f, A, kdim, f, s.co, Y, s.co);
      if (ep.active()) ep.apply(Y, b1 - b0, s.co);
    }
  });
  return info.Env().Undefined();
}

// y[ch] = sum_t taps[t][ch] * filt[t][ch] (t in order, from 0). Channels in blocks of 32 held in four 8-lane
// registers across all taps (GCC vector extension: it keeps a plain float array on the stack instead); the
// remaining channels accumulate in y.
typedef float Lanes8 __attribute__((vector_size(32)));
inline Lanes8 load8(const float* p) {
  Lanes8 v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void depthwisePixel(const float* const* taps, const float* const* filt, int nt, int64_t c, float* __restrict y) {
  int64_t c0 = 0;
  for (; c0 + 32 <= c; c0 += 32) {
    Lanes8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int t = 0; t < nt; t++) {
      const float* xp = taps[t] + c0;
      const float* fp = filt[t] + c0;
      a0 += load8(xp) * load8(fp);
      a1 += load8(xp + 8) * load8(fp + 8);
      a2 += load8(xp + 16) * load8(fp + 16);
      a3 += load8(xp + 24) * load8(fp + 24);
    }
    std::memcpy(y + c0, &a0, 32);
    std::memcpy(y + c0 + 8, &a1, 32);
    std::memcpy(y + c0 + 16, &a2, 32);
    std::memcpy(y + c0 + 24, &a3, 32);
  }
  if (c0 == c) return;
  std::fill(y + c0, y + c, 0.f);
  for (int t = 0; t < nt; t++)
    for (int64_t k = c0; k < c; k++) y[k] += taps[t][k] * filt[t][k];
}

// Depthwise: y[b, oy, ox, c*mult + q] = sum_ij x[b, iy, ix, c] f[i, j, c, q]. params as Conv2D with
// shape field co = mult (channel multiplier); output channels ci*mult.
Napi::Value Depthwise(const Napi::CallbackInfo& info) {
  Args a(info);
  const ConvShape s = convShape(a, 3);
  const int64_t mult = s.co, c = s.ci, cm = c * mult;
  const float* x = a.f32(0, s.n * s.h * s.w * c);
  const float* f = a.f32(1, s.kh * s.kw * cm);
  float* y = a.f32(2, s.n * s.oh * s.ow * cm);
  const Epilogue ep = a.epilogue(18);
  const int64_t outRows = s.n * s.oh;  // one unit = one output image row
  const int threads = static_cast<int>(std::min<int64_t>(threadsFor(2.0 * outRows * s.ow * cm * s.kh * s.kw), std::max<int64_t>(outRows, 1)));
#ifdef IRLENS_HAVE_DNNL
  // oneDNN's NHWC depthwise kernels (brdgmm_dw / jit_dw): the dw 3x3 on [1,64,64,510] in ~2.9 ms instead of
  // ~3.8 ms, [1,64,64,48] in 0.34 instead of 0.91 ms. The loop below runs without oneDNN.
  if (g_dnnl && outRows > 0 && cm > 0 && dnnlConv(s, true, x, f, y, threads)) {
    if (ep.active()) {
      parallel(threads, [&](int t, int parts) {
        int64_t r0, r1;
        part(outRows * s.ow, parts, t, &r0, &r1);
        ep.apply(y + r0 * cm, r1 - r0, cm);
      });
    }
    return info.Env().Undefined();
  }
#endif
  parallel(threads, [&](int t, int parts) {
    int64_t r0, r1;
    part(outRows, parts, t, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
      const int64_t b = r / s.oh, oy = r % s.oh;
      float* yr = y + r * s.ow * cm;
      // One output pixel at a time. mult == 1 (up to 64 taps): channel blocks summed over all taps in registers
      // (depthwisePixel). Every element adds its taps in (i, j) order, starting from 0, on every branch.
      for (int64_t ox = 0; ox < s.ow; ox++) {
        float* __restrict yp = yr + ox * cm;
        if (mult == 1) {
          const float* taps[64];
          const float* filt[64];
          int nt = 0;
          for (int64_t i = 0; i < s.kh; i++) {
            const int64_t iy = oy * s.sh + i * s.dh - s.top;
            if (iy < 0 || iy >= s.h) continue;
            for (int64_t j = 0; j < s.kw; j++) {
              const int64_t ix = ox * s.sw + j * s.dw - s.left;
              if (ix < 0 || ix >= s.w) continue;
              if (nt == 64) continue;  // more than 64 taps: the loop below runs instead
              taps[nt] = x + ((b * s.h + iy) * s.w + ix) * c;
              filt[nt++] = f + (i * s.kw + j) * cm;
            }
          }
          if (s.kh * s.kw <= 64) {
            depthwisePixel(taps, filt, nt, c, yp);
            continue;
          }
        }
        std::fill(yp, yp + cm, 0.f);
        for (int64_t i = 0; i < s.kh; i++) {
          const int64_t iy = oy * s.sh + i * s.dh - s.top;
          if (iy < 0 || iy >= s.h) continue;
          const float* xrow = x + (b * s.h + iy) * s.w * c;
          for (int64_t j = 0; j < s.kw; j++) {
            const int64_t ix = ox * s.sw + j * s.dw - s.left;
            if (ix < 0 || ix >= s.w) continue;
            const float* __restrict xp = xrow + ix * c;
            const float* __restrict fr = f + (i * s.kw + j) * cm;
            if (mult == 1) {
              for (int64_t ch = 0; ch < c; ch++) yp[ch] += xp[ch] * fr[ch];
            } else {
              for (int64_t ch = 0; ch < c; ch++)
                for (int64_t q = 0; q < mult; q++) yp[ch * mult + q] += xp[ch] * fr[ch * mult + q];
            }
          }
        }
      }
      if (ep.active()) ep.apply(yr, s.ow, cm);
    }
  });
  return info.Env().Undefined();
}

// ------------------------------------------------------------------------------------------------ copies

// out[Σ i_d os_d] = in[Σ i_d is_d] over the index box `shape` (rank >= 1, strides in elements). The caller
// (src/engine/native/kernels.ts) has merged axes that are contiguous in both. The last axis with unit strides on
// both sides is a row copy; otherwise the last two axes are copied in 32x32 tiles, so that a transpose reads
// and writes whole cache lines. Work is split over (outer index, tile row) units; a copy has no reduction, so the
// result does not depend on the split.
template <typename T>
void copyStrided(const T* in, T* out, int rank, const int64_t* shape, const int64_t* is, const int64_t* os) {
  const int last = rank - 1;
  const bool rows = is[last] == 1 && os[last] == 1;
  const int tileAxes = rows || rank == 1 ? 1 : 2;  // axes handled inside a unit
  const int outerRank = rank - tileAxes;
  int64_t outer = 1;
  for (int d = 0; d < outerRank; d++) outer *= shape[d];
  constexpr int64_t kTile = 32;
  const int64_t a = tileAxes == 2 ? rank - 2 : last;  // the axis split into tile rows
  const int64_t tilesA = tileAxes == 2 ? (shape[a] + kTile - 1) / kTile : 1;
  const int64_t units = outer * tilesA;
  int64_t total = 1;
  for (int d = 0; d < rank; d++) total *= shape[d];
  const int threads = static_cast<int>(std::min<int64_t>(total < (1 << 18) ? 1 : g_threads, std::max<int64_t>(units, 1)));
  parallel(threads, [&](int t, int parts) {
    int64_t u0, u1;
    part(units, parts, t, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
      int64_t o = u / tilesA, inBase = 0, outBase = 0;
      for (int d = outerRank - 1; d >= 0; d--) {
        const int64_t i = o % shape[d];
        o /= shape[d];
        inBase += i * is[d];
        outBase += i * os[d];
      }
      if (tileAxes == 1) {
        const int64_t n = shape[last];
        if (rows) std::memcpy(out + outBase, in + inBase, n * sizeof(T));
        else for (int64_t j = 0; j < n; j++) out[outBase + j * os[last]] = in[inBase + j * is[last]];
        continue;
      }
      const int64_t i0 = (u % tilesA) * kTile, i1 = std::min(shape[a], i0 + kTile);
      for (int64_t j0 = 0; j0 < shape[last]; j0 += kTile) {
        const int64_t j1 = std::min(shape[last], j0 + kTile);
        for (int64_t i = i0; i < i1; i++) {
          const T* src = in + inBase + i * is[a];
          T* dst = out + outBase + i * os[a];
          for (int64_t j = j0; j < j1; j++) dst[j * os[last]] = src[j * is[last]];
        }
      }
    }
  });
}

// params: 0 inOff, 1 outOff, 2 bytes per element (1 or 4), 3 rank, then shape, input strides, output strides
// (elements). Bounds: the highest index on each side must lie inside the heap.
Napi::Value Copy(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t bytes = a.i64(2), rank = a.i64(3);
  if ((bytes != 1 && bytes != 4) || rank < 1 || rank > 8 || a.p.size() != static_cast<size_t>(4 + 3 * rank))
    throw Napi::RangeError::New(info.Env(), "irlens native: copy expects 1- or 4-byte elements and rank 1..8");
  int64_t shape[8], is[8], os[8], inMax = 0, outMax = 0;
  for (int64_t d = 0; d < rank; d++) {
    shape[d] = a.i64(4 + d);
    is[d] = a.i64(4 + rank + d);
    os[d] = a.i64(4 + 2 * rank + d);
    if (shape[d] <= 0 || is[d] < 0 || os[d] < 0) return info.Env().Undefined();  // empty box (or bad strides): nothing
    inMax += (shape[d] - 1) * is[d];
    outMax += (shape[d] - 1) * os[d];
  }
  const auto view = [&](size_t k, int64_t maxIndex) -> uint8_t* {
    const int64_t off = a.i64(k);
    if (off < 0 || off % bytes != 0 || static_cast<uint64_t>(off) + bytes * (maxIndex + 1) > a.heapBytes)
      throw Napi::RangeError::New(info.Env(), "irlens native: tensor offset outside the wasm heap");
    return a.heap + off;
  };
  uint8_t* in = view(0, inMax);
  uint8_t* out = view(1, outMax);
  if (bytes == 4) copyStrided(reinterpret_cast<const float*>(in), reinterpret_cast<float*>(out), static_cast<int>(rank), shape, is, os);
  else copyStrided(reinterpret_cast<const uint8_t*>(in), out, static_cast<int>(rank), shape, is, os);
  return info.Env().Undefined();
}

// ------------------------------------------------------------------------------------------------ GELU

// Exact-erf GELU (torch.nn.GELU()) as x * sigmoid(h(x)), h(x) = x * sum_k kGeluLogit[k] x^(2k) the odd
// polynomial fit of logit(Phi(x)) that the wasm path uses too (src/engine/wasm/gelu.ts documents the fit and
// its accuracy); x is clipped to +-10 only to keep the powers finite. Hand-written because glibc vectorises
// expf/erff only under -ffast-math, which would change float semantics for the whole process: this exp is plain
// arithmetic that the compiler vectorises (AVX-512: 16 lanes).
constexpr float kGeluLogit[] = {1.5957698829818832f, 0.07266616880608151f, -6.518947465825357e-5f,
                                -1.1061264036250809e-4f, 7.92954768338806e-6f, -2.645326771816975e-7f,
                                3.5125584663120435e-9f};
constexpr int kGeluTerms = 7;
constexpr float kGeluClip = 10.f;

// e^z for z in [-87, 88] (clamped outside): 2^n * e^r with |r| <= ln2/2, degree-6 Taylor polynomial of e^r
// (relative error < 2e-7, below float rounding of the final product).
inline float expApprox(float z) {
  z = std::min(std::max(z, -87.f), 88.f);
  // Round to nearest (even) by the 1.5 * 2^23 shift: plain arithmetic, so the loop vectorises; |z log2 e| < 2^22.
  const float n = (z * 1.44269504088896341f + 12582912.f) - 12582912.f;
  const float r = (z - n * 0.693145751953125f) - n * 1.42860682030941723212e-6f;
  float p = 1.f / 720.f;
  p = p * r + 1.f / 120.f;
  p = p * r + 1.f / 24.f;
  p = p * r + 1.f / 6.f;
  p = p * r + 0.5f;
  p = p * r + 1.f;
  p = p * r + 1.f;
  int32_t bits;
  std::memcpy(&bits, &p, 4);
  bits += static_cast<int32_t>(n) << 23;
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

// softmax of one row in place: subtract the row maximum, e^x, divide by the row sum (float64). The maximum and the
// sum run in 8 interleaved lanes (element j in lane j % 8), combined in lane order: a fixed order, so the bits
// repeat, and the loops vectorise (a serial float64 sum is latency-bound: ~1 ms of EDT-B's masked window
// attention call). Probabilities below FLT_MIN become 0 instead of subnormal: masked tokens (SwinIR's and EDT's
// shifted windows add -100) give e^-100 / sum ~ 1e-44, and Intel cores take a microcode assist for every
// subnormal operand, so the products with P (and the gradient's with dS) ran 5x slower on an Emerald Rapids Xeon
// (EDT-B's masked window attention 45 vs 9 ms per call; AMD's Zen runs them at full speed). That change is below
// 1.2e-38 absolute.
inline void softmaxRow(float* __restrict row, int64_t n) {
  constexpr int kLanes = 8;
  const int64_t body = n - n % kLanes;
  float mx = row[0];
  if (body > 0) {
    float lane[kLanes];
    for (int l = 0; l < kLanes; l++) lane[l] = row[l];
    for (int64_t j = kLanes; j < body; j += kLanes)
      for (int l = 0; l < kLanes; l++) lane[l] = std::max(lane[l], row[j + l]);
    mx = lane[0];
    for (int l = 1; l < kLanes; l++) mx = std::max(mx, lane[l]);
  }
  for (int64_t j = body; j < n; j++) mx = std::max(mx, row[j]);
  double sumLane[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t j = 0; j < body; j += kLanes)
    for (int l = 0; l < kLanes; l++) {
      row[j + l] = expApprox(row[j + l] - mx);
      sumLane[l] += row[j + l];
    }
  for (int64_t j = body; j < n; j++) {
    row[j] = expApprox(row[j] - mx);
    sumLane[j % kLanes] += row[j];
  }
  double sum = 0;
  for (int l = 0; l < kLanes; l++) sum += sumLane[l];
  const float inv = static_cast<float>(1.0 / sum);
  // Decided on the exponential, before the product: producing a subnormal costs an assist too. The margin keeps
  // every product at or above FLT_MIN.
  const float threshold = static_cast<float>(sum * std::numeric_limits<float>::min() * (1.0 + 1e-6));
  for (int64_t j = 0; j < n; j++) row[j] = row[j] >= threshold ? row[j] * inv : 0.f;
}

inline void geluTerms(float x, float* sig, float* poly, float* clipped) {
  const float c = std::min(std::max(x, -kGeluClip), kGeluClip);
  const float u = c * c;
  float s = kGeluLogit[kGeluTerms - 1];
  for (int k = kGeluTerms - 2; k >= 0; k--) s = s * u + kGeluLogit[k];
  const float z = -c * s;
  const float sigmoid = 1.f / (1.f + expApprox(z));  // computed unconditionally, then selected: no branch in the loop
  *sig = z > 88.f ? 0.f : sigmoid;                  // exactly 0 past e^88, as the wasm path: gelu(-large) = -0
  *poly = u;
  *clipped = c;
}

// params: 0 xOff, 1 yOff, 2 count.  y = gelu(x).
Napi::Value Gelu(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t n = a.i64(2);
  const float* x = a.f32(0, n);
  float* y = a.f32(1, n);
  const int threads = streamThreads(n, n);
  parallel(threads, [&](int t, int parts) {
    int64_t i0, i1;
    part(n, parts, t, &i0, &i1);
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
      float sig, u, c;
      geluTerms(x[i], &sig, &u, &c);
      y[i] = x[i] * sig;
    }
  });
  return info.Env().Undefined();
}

// params: 0 dyOff, 1 xOff, 2 dxOff, 3 count.  dx = dy * (s + c s (1 - s) h'(c)), s = sigmoid(h(c)), c = clip(x).
Napi::Value GeluGrad(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t n = a.i64(3);
  const float* dy = a.f32(0, n);
  const float* x = a.f32(1, n);
  float* dx = a.f32(2, n);
  const int threads = streamThreads(n, n);
  parallel(threads, [&](int t, int parts) {
    int64_t i0, i1;
    part(n, parts, t, &i0, &i1);
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
      float sig, u, c;
      geluTerms(x[i], &sig, &u, &c);
      // h'(c) = sum_k (2k+1) kGeluLogit[k] c^(2k)
      float slope = (2 * kGeluTerms - 1) * kGeluLogit[kGeluTerms - 1];
      for (int k = kGeluTerms - 2; k >= 0; k--) slope = slope * u + (2 * k + 1) * kGeluLogit[k];
      dx[i] = dy[i] * (sig + c * (sig * (1.f - sig)) * slope);
    }
  });
  return info.Env().Undefined();
}

// Restormer's gated GELU (GDFN: x1, x2 = x.chunk(2, dim=1); F.gelu(x1) * x2) on rows of 2h channels (NHWC):
// y[r, j] = gelu(x[r, j]) * x[r, h + j]. The float32 operations of Gelu followed by a Multiply, so the same
// bits as that composition, without the split's two strided copies. params: 0 xOff, 1 yOff, 2 rows, 3 h.
Napi::Value GatedGelu(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t rows = a.i64(2), h = a.i64(3);
  const float* x = a.f32(0, rows * 2 * h);
  float* y = a.f32(1, rows * h);
  const int threads = static_cast<int>(std::min<int64_t>(rows * h < (1 << 16) ? 1 : g_threads, std::max<int64_t>(rows, 1)));
  parallel(threads, [&](int t, int parts) {
    int64_t r0, r1;
    part(rows, parts, t, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
      const float* gate = x + r * 2 * h;
      const float* value = gate + h;
      float* yr = y + r * h;
#pragma omp simd
      for (int64_t j = 0; j < h; j++) {
        float sig, u, c;
        geluTerms(gate[j], &sig, &u, &c);
        const float g = gate[j] * sig;
        yr[j] = g * value[j];
      }
    }
  });
  return info.Env().Undefined();
}

// Gradients of GatedGelu: dx[r, j] = (dy value) gelu'(gate) (GeluGrad of the Multiply's gradient), dx[r, h + j]
// = dy gelu(gate). params: 0 dyOff, 1 xOff, 2 dxOff, 3 rows, 4 h.
Napi::Value GatedGeluGrad(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t rows = a.i64(3), h = a.i64(4);
  const float* dy = a.f32(0, rows * h);
  const float* x = a.f32(1, rows * 2 * h);
  float* dx = a.f32(2, rows * 2 * h);
  const int threads = static_cast<int>(std::min<int64_t>(rows * h < (1 << 16) ? 1 : g_threads, std::max<int64_t>(rows, 1)));
  parallel(threads, [&](int t, int parts) {
    int64_t r0, r1;
    part(rows, parts, t, &r0, &r1);
    for (int64_t r = r0; r < r1; r++) {
      const float* gate = x + r * 2 * h;
      const float* value = gate + h;
      const float* dyr = dy + r * h;
      float* dGate = dx + r * 2 * h;
      float* dValue = dGate + h;
#pragma omp simd
      for (int64_t j = 0; j < h; j++) {
        float sig, u, c;
        geluTerms(gate[j], &sig, &u, &c);
        float slope = (2 * kGeluTerms - 1) * kGeluLogit[kGeluTerms - 1];
        for (int k = kGeluTerms - 2; k >= 0; k--) slope = slope * u + (2 * k + 1) * kGeluLogit[k];
        const float dg = dyr[j] * value[j];
        dGate[j] = dg * (sig + c * (sig * (1.f - sig)) * slope);
        const float g = gate[j] * sig;
        dValue[j] = dyr[j] * g;
      }
    }
  });
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------- elementwise, reduce

enum BinaryOp { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3 };

template <int Op>
inline float binary(float a, float b) {
  if (Op == kAdd) return a + b;
  if (Op == kSub) return a - b;
  if (Op == kMul) return a * b;
  return a / b;
}

// out[i] = a[ia] op b[ib] over the box `shape`, a and b read with strides (0 on broadcast axes), out contiguous.
// One correctly rounded float32 operation per element, as the wasm kernels do, so the bits are the same.
template <int Op>
void binaryStrided(const float* a, const float* b, float* out, int rank, const int64_t* shape, const int64_t* as, const int64_t* bs) {
  const int last = rank - 1;
  const int64_t n = shape[last], sa = as[last], sb = bs[last];
  int64_t rows = 1;
  for (int d = 0; d < last; d++) rows *= shape[d];
  const int threads = rows * n < (1 << 17) ? 1 : g_threads;
  // Work units are (row, column piece): a same-shape op merges into a single row, which must still split over
  // the threads. Each element is one operation, so the split never changes a bit.
  const int64_t pieces = rows >= threads ? 1 : (threads + rows - 1) / rows, units = rows * pieces;
  parallel(static_cast<int>(std::min<int64_t>(threads, units)), [&](int t, int parts) {
    int64_t u0, u1;
    part(units, parts, t, &u0, &u1);
    for (int64_t u = u0; u < u1; u++) {
      const int64_t r = u / pieces;
      int64_t j0, j1;
      part(n, static_cast<int>(pieces), static_cast<int>(u % pieces), &j0, &j1);
      int64_t o = r, ia = 0, ib = 0;
      for (int d = last - 1; d >= 0; d--) {
        const int64_t i = o % shape[d];
        o /= shape[d];
        ia += i * as[d];
        ib += i * bs[d];
      }
      const float* __restrict pa = a + ia + j0 * sa;
      const float* __restrict pb = b + ib + j0 * sb;
      float* __restrict po = out + r * n + j0;
      const int64_t m = j1 - j0;
      if (sa == 1 && sb == 1) for (int64_t j = 0; j < m; j++) po[j] = binary<Op>(pa[j], pb[j]);
      else if (sa == 1 && sb == 0) for (int64_t j = 0; j < m; j++) po[j] = binary<Op>(pa[j], pb[0]);
      else if (sa == 0 && sb == 1) for (int64_t j = 0; j < m; j++) po[j] = binary<Op>(pa[0], pb[j]);
      else for (int64_t j = 0; j < m; j++) po[j] = binary<Op>(pa[j * sa], pb[j * sb]);
    }
  });
}

// params: 0 aOff, 1 bOff, 2 outOff, 3 op, 4 rank, then shape, a strides, b strides (elements; the caller merged
// axes and put 0 on broadcast ones).
Napi::Value Binary(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t op = a.i64(3), rank = a.i64(4);
  if (op < 0 || op > 3 || rank < 1 || rank > 8 || a.p.size() != static_cast<size_t>(5 + 3 * rank))
    throw Napi::RangeError::New(info.Env(), "irlens native: binary op expects op 0..3 and rank 1..8");
  int64_t shape[8], as[8], bs[8], total = 1, aMax = 0, bMax = 0;
  for (int64_t d = 0; d < rank; d++) {
    shape[d] = a.i64(5 + d);
    as[d] = a.i64(5 + rank + d);
    bs[d] = a.i64(5 + 2 * rank + d);
    if (shape[d] <= 0 || as[d] < 0 || bs[d] < 0) return info.Env().Undefined();
    total *= shape[d];
    aMax += (shape[d] - 1) * as[d];
    bMax += (shape[d] - 1) * bs[d];
  }
  const float* x = a.f32(0, aMax + 1);
  const float* y = a.f32(1, bMax + 1);
  float* out = a.f32(2, total);
  const int r = static_cast<int>(rank);
  switch (op) {
    case kAdd: binaryStrided<kAdd>(x, y, out, r, shape, as, bs); break;
    case kSub: binaryStrided<kSub>(x, y, out, r, shape, as, bs); break;
    case kMul: binaryStrided<kMul>(x, y, out, r, shape, as, bs); break;
    default: binaryStrided<kDiv>(x, y, out, r, shape, as, bs); break;
  }
  return info.Env().Undefined();
}

// nn.PReLU with one parameter a: y = x > 0 ? x : a x. params: 0 xOff, 1 aOff, 2 yOff, 3 count.
// The same bits as relu(x) - a relu(-x) (which rounds a (-x) then negates, both exact), up to the sign of a zero.
Napi::Value Prelu(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t n = a.i64(3);
  const float* x = a.f32(0, n);
  const float alpha = *a.f32(1, 1);
  float* y = a.f32(2, n);
  const int threads = static_cast<int>(std::min<int64_t>(n < (1 << 17) ? 1 : g_threads, std::max<int64_t>(n, 1)));
  parallel(threads, [&](int t, int parts) {
    int64_t i0, i1;
    part(n, parts, t, &i0, &i1);
    // Locals: inside the OpenMP-outlined body, captured references would be reloaded on every store (aliasing),
    // which leaves the loop scalar (10x slower on 2 threads than on 1, measured).
    const float* __restrict xs = x;
    float* __restrict ys = y;
    const float al = alpha;
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) ys[i] = xs[i] > 0.f ? xs[i] : al * xs[i];
  });
  return info.Env().Undefined();
}

// Gradients of Prelu, as torch's prelu backward: dx = x > 0 ? dy : a dy; da = sum over x <= 0 of dy x, each
// product rounded to float32 (as the Multiply of the composition), summed in float64 over fixed chunks of 2^16
// elements (8 lanes each) whose partial sums are added in chunk order, so the bits do not depend on the thread
// count.
// params: 0 dyOff, 1 xOff, 2 aOff, 3 dxOff, 4 daOff, 5 count.
Napi::Value PreluGrad(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t n = a.i64(5);
  const float* dy = a.f32(0, n);
  const float* x = a.f32(1, n);
  const float alpha = *a.f32(2, 1);
  float* dx = a.f32(3, n);
  float* da = a.f32(4, 1);
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(static_cast<size_t>(chunks), 0.0);
  const int threads = static_cast<int>(std::min<int64_t>(n < (1 << 17) ? 1 : g_threads, std::max<int64_t>(chunks, 1)));
  parallel(threads, [&](int t, int parts) {
    int64_t c0, c1;
    part(chunks, parts, t, &c0, &c1);
    for (int64_t c = c0; c < c1; c++) {
      const int64_t i0 = c * kChunk, i1 = std::min(n, i0 + kChunk);
      const float* __restrict xs = x;
      const float* __restrict dys = dy;
      float* __restrict dxs = dx;
      const float al = alpha;
      // Branch-free (the signs of x are random: a branch mispredicts half the time, ~10x slower, measured) and in
      // 8 float64 lanes (element i into lane i % 8, lanes added in order), which vectorise.
      constexpr int kLanes = 8;
      double lane[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
      const int64_t body = i0 + (i1 - i0) / kLanes * kLanes;
      for (int64_t i = i0; i < body; i += kLanes)
        for (int l = 0; l < kLanes; l++) {
          const float xv = xs[i + l], dv = dys[i + l];
          const bool positive = xv > 0.f;
          dxs[i + l] = positive ? dv : al * dv;
          lane[l] += positive ? 0.0 : static_cast<double>(dv * xv);
        }
      for (int64_t i = body; i < i1; i++) {
        const bool positive = xs[i] > 0.f;
        dxs[i] = positive ? dys[i] : al * dys[i];
        lane[(i - i0) % kLanes] += positive ? 0.0 : static_cast<double>(dys[i] * xs[i]);
      }
      double s = 0;
      for (int l = 0; l < kLanes; l++) s += lane[l];
      partial[static_cast<size_t>(c)] = s;
    }
  });
  double total = 0;
  for (double p : partial) total += p;
  *da = static_cast<float>(total);
  return info.Env().Undefined();
}

// Sum (or mean) of x viewed as [outer, reduce, inner] over the middle axis, accumulated in float64 in index
// order for every output element (so the split over threads does not change any bit). params: 0 xOff, 1 outOff,
// 2 outer, 3 reduce, 4 inner, 5 mean.
Napi::Value Reduce(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t outer = a.i64(2), reduce = a.i64(3), inner = a.i64(4);
  const bool mean = a.i64(5) != 0;
  const float* x = a.f32(0, outer * reduce * inner);
  float* out = a.f32(1, outer * inner);
  // Units: (outer index, block of 64 inner elements); each unit sums its columns over the whole reduced axis.
  constexpr int64_t kCols = 64;
  const int64_t blocks = (inner + kCols - 1) / kCols, units = outer * blocks;
  const int threads = static_cast<int>(std::min<int64_t>(outer * reduce * inner < (1 << 17) ? 1 : g_threads, std::max<int64_t>(units, 1)));
  parallel(threads, [&](int t, int parts) {
    int64_t u0, u1;
    part(units, parts, t, &u0, &u1);
    double acc[kCols];
    for (int64_t u = u0; u < u1; u++) {
      const int64_t o = u / blocks, c0 = (u % blocks) * kCols, c1 = std::min(inner, c0 + kCols), w = c1 - c0;
      std::fill(acc, acc + w, 0.0);
      const float* base = x + o * reduce * inner + c0;
      if (inner == 1) {
        double s = 0;
        for (int64_t r = 0; r < reduce; r++) s += base[r];
        acc[0] = s;
      } else {
        for (int64_t r = 0; r < reduce; r++) {
          const float* row = base + r * inner;
          for (int64_t j = 0; j < w; j++) acc[j] += row[j];
        }
      }
      for (int64_t j = 0; j < w; j++) out[o * inner + c0 + j] = static_cast<float>(mean ? acc[j] / reduce : acc[j]);
    }
  });
  return info.Env().Undefined();
}

// ------------------------------------------------------------------------------------- window attention

// Geometry of a windowed multi-head attention over bw windows of n tokens, heads heads of d channels; bias
// [biasHeads, n, n] with biasHeads 1 or heads (null: none); mask [nW, n, n] for window b % nW (null: none).
struct AttentionShape {
  int64_t bw, heads, n, d, biasHeads, nW;
  float scale;
};

// Where the n rows (d floats each) of the unit (window b, head h) = u (b * heads + h) of a q, k, v or output
// tensor live: from b * bS + h * hS, ld floats apart. Head layout [bw*heads, n, d]: bS = heads*n*d, hS = n*d,
// ld = d. Token layout [bw, n, ld] (heads side by side in the channels, as the qkv projection writes them and
// the output projection reads them, so no transpose is needed; ld may be longer than heads*d, as for q, k, v
// read from one packed [bw, n, 3C] projection): bS = n*ld, hS = d.
struct UnitLayout {
  int64_t bS, hS, ld;
  int64_t at(int64_t u, int64_t heads) const { return (u / heads) * bS + (u % heads) * hS; }
  // Floats from a unit-0 pointer to one past the last element any unit touches (for the bounds check).
  int64_t extent(const AttentionShape& s) const { return (s.bw - 1) * bS + (s.heads - 1) * hS + (s.n - 1) * ld + s.d; }
};

UnitLayout headLayout(const AttentionShape& s) { return UnitLayout{s.heads * s.n * s.d, s.n * s.d, s.d}; }
UnitLayout tokenLayout(const AttentionShape& s, int64_t ld) { return UnitLayout{s.n * ld, s.d, ld}; }

// P = softmax((q * scale) k^T + bias + mask) for unit u, into p [n, n]; qu, ku: the unit's rows (ld apart);
// qs: [n, d] scratch that receives the scaled q. The same operations as the tf-op composition
// (src/models/blocks/window-attention.ts): q scaled first, then the product, bias, mask, and softmaxRow. The heads and token layouts give the same bits: the GEMM packs
// its operands whatever their row stride.
void attentionProbs(const AttentionShape& s, int64_t u, const float* qu, const float* ku, int64_t ld, const float* bias, const float* mask,
                    float* qs, float* p) {
  const int64_t nn = s.n * s.n;
  for (int64_t r = 0; r < s.n; r++)
    for (int64_t i = 0; i < s.d; i++) qs[r * s.d + i] = qu[r * ld + i] * s.scale;
  sgemm(false, true, s.n, s.n, s.d, 1.f, qs, s.d, ku, ld, p, s.n);
  const int64_t b = u / s.heads, h = u % s.heads;
  if (bias) {
    const float* bh = bias + (s.biasHeads == 1 ? 0 : h) * nn;
    for (int64_t i = 0; i < nn; i++) p[i] += bh[i];
  }
  if (mask) {
    const float* mw = mask + (b % s.nW) * nn;
    for (int64_t i = 0; i < nn; i++) p[i] += mw[i];
  }
  for (int64_t r = 0; r < s.n; r++) softmaxRow(p + r * s.n, s.n);
}

AttentionShape attentionShape(const Args& a, size_t k) {
  return AttentionShape{a.i64(k), a.i64(k + 1), a.i64(k + 2), a.i64(k + 3), a.i64(k + 4), a.i64(k + 5), static_cast<float>(a.p.at(k + 6))};
}

// A q, k, v or output tensor of the attention: its unit-0 pointer (bounds-checked over all units) and layout.
struct AttentionOperand {
  float* base;
  UnitLayout layout;
  float* unit(int64_t u, int64_t heads) const { return base + layout.at(u, heads); }
};

AttentionOperand attentionOperand(const Args& a, size_t k, const AttentionShape& s, const UnitLayout& layout) {
  return AttentionOperand{a.f32(k, layout.extent(s)), layout};
}

// Bias and mask of params k and k + 1 (offset -1: none).
void biasAndMask(const Args& a, size_t k, const AttentionShape& s, const float** bias, const float** mask) {
  *bias = a.i64(k) >= 0 ? a.f32(k, s.biasHeads * s.n * s.n) : nullptr;
  *mask = a.i64(k + 1) >= 0 ? a.f32(k + 1, s.nW * s.n * s.n) : nullptr;
}

// out = P v per (window, head) in token layout: q, k, v [bw, n, inLd] (heads side by side from their offsets),
// out [bw, n, outLd]. params: 0 qOff, 1 kOff, 2 vOff, 3 biasOff (-1), 4 maskOff (-1), 5 outOff,
// 6.. bw, heads, n, d, biasHeads, nW, scale, 13 inLd, 14 outLd.
Napi::Value WindowAttention(const Napi::CallbackInfo& info) {
  Args a(info);
  const AttentionShape s = attentionShape(a, 6);
  const UnitLayout in = tokenLayout(s, a.i64(13)), outL = tokenLayout(s, a.i64(14));
  const int64_t units = s.bw * s.heads, nd = s.n * s.d, nn = s.n * s.n;
  const AttentionOperand q = attentionOperand(a, 0, s, in), k = attentionOperand(a, 1, s, in), v = attentionOperand(a, 2, s, in);
  const AttentionOperand out = attentionOperand(a, 5, s, outL);
  const float *bias, *mask;
  biasAndMask(a, 3, s, &bias, &mask);
  const int N = static_cast<int>(s.n), D = static_cast<int>(s.d);
  const int threads = static_cast<int>(std::min<int64_t>(threadsFor(4.0 * units * nn * s.d), std::max<int64_t>(units, 1)));
  parallel(threads, [&](int t, int parts) {
    int64_t u0, u1;
    part(units, parts, t, &u0, &u1);
    std::vector<float> qs(nd), p(nn);
    for (int64_t u = u0; u < u1; u++) {
      attentionProbs(s, u, q.unit(u, s.heads), k.unit(u, s.heads), in.ld, bias, mask, qs.data(), p.data());
      sgemm(false, false, N, D, N, 1.f, p.data(), N, v.unit(u, s.heads), static_cast<int>(in.ld), out.unit(u, s.heads), static_cast<int>(outL.ld));
    }
  });
  return info.Env().Undefined();
}

// From dP (in dp, overwritten with dS) and P of unit u: dS = P (dP - rowsum(dP P)), dq = scale dS k,
// dk = dS^T (q scale) (qs: the scaled q of the unit), and dS added to the unit's head of pb (null: no bias).
void scoresGrad(const AttentionShape& s, int64_t u, const float* p, float* dp, const AttentionOperand& k, const float* qs,
                const AttentionOperand& dq, const AttentionOperand& dk, double* pb) {
  const int64_t nn = s.n * s.n;
  const int N = static_cast<int>(s.n), D = static_cast<int>(s.d);
  for (int64_t r = 0; r < s.n; r++) {
    const float* pr = p + r * s.n;
    float* dr = dp + r * s.n;
    double dot = 0;
    for (int64_t j = 0; j < s.n; j++) dot += static_cast<double>(dr[j]) * pr[j];
    const float fd = static_cast<float>(dot);
    for (int64_t j = 0; j < s.n; j++) dr[j] = pr[j] * (dr[j] - fd);
  }
  sgemm(false, false, N, D, N, s.scale, dp, N, k.unit(u, s.heads), static_cast<int>(k.layout.ld), dq.unit(u, s.heads), static_cast<int>(dq.layout.ld));
  sgemm(true, false, N, D, N, 1.f, dp, N, qs, D, dk.unit(u, s.heads), static_cast<int>(dk.layout.ld));
  if (pb) {
    double* hb = pb + (s.biasHeads == 1 ? 0 : u % s.heads) * nn;
    for (int64_t i = 0; i < nn; i++) hb[i] += dp[i];
  }
}

// Adds the per-thread float64 bias-gradient blocks in thread order into dBias.
void mergeBiasGrad(const std::vector<double>& partial, int threads, int64_t len, float* dBias) {
  for (int64_t i = 0; i < len; i++) {
    double sum = 0;
    for (int t = 0; t < threads; t++) sum += partial[t * len + i];
    dBias[i] = static_cast<float>(sum);
  }
}

// P alone, [bw*heads, n, n]: the probabilities WindowAttention uses, bit for bit (same attentionProbs), for
// runs whose hooks read or change them; q, k in head layout [bw*heads, n, d]. params: 0 qOff, 1 kOff,
// 2 biasOff (-1), 3 maskOff (-1), 4 outOff, 5.. shape as WindowAttention (d included).
Napi::Value AttentionProbs(const Napi::CallbackInfo& info) {
  Args a(info);
  const AttentionShape s = attentionShape(a, 5);
  const UnitLayout heads = headLayout(s);
  const int64_t units = s.bw * s.heads, nd = s.n * s.d, nn = s.n * s.n;
  const AttentionOperand q = attentionOperand(a, 0, s, heads), k = attentionOperand(a, 1, s, heads);
  const float *bias, *mask;
  biasAndMask(a, 2, s, &bias, &mask);
  float* out = a.f32(4, units * nn);
  const int threads = static_cast<int>(std::min<int64_t>(threadsFor(2.0 * units * nn * s.d), std::max<int64_t>(units, 1)));
  parallel(threads, [&](int t, int parts) {
    int64_t u0, u1;
    part(units, parts, t, &u0, &u1);
    std::vector<float> qs(nd);
    for (int64_t u = u0; u < u1; u++) attentionProbs(s, u, q.unit(u, s.heads), k.unit(u, s.heads), s.d, bias, mask, qs.data(), out + u * nn);
  });
  return info.Env().Undefined();
}

// Gradients of AttentionProbs from dP and the saved P (head layout). params: 0 dPOff, 1 pOff, 2 qOff, 3 kOff,
// 4 dqOff, 5 dkOff, 6 dBiasOff (-1: not wanted), 7.. shape.
Napi::Value AttentionProbsGrad(const Napi::CallbackInfo& info) {
  Args a(info);
  const AttentionShape s = attentionShape(a, 7);
  const UnitLayout heads = headLayout(s);
  const int64_t units = s.bw * s.heads, nd = s.n * s.d, nn = s.n * s.n;
  const float* dP = a.f32(0, units * nn);
  const float* P = a.f32(1, units * nn);
  const AttentionOperand q = attentionOperand(a, 2, s, heads), k = attentionOperand(a, 3, s, heads);
  const AttentionOperand dq = attentionOperand(a, 4, s, heads), dk = attentionOperand(a, 5, s, heads);
  float* dBias = a.i64(6) >= 0 ? a.f32(6, s.biasHeads * nn) : nullptr;
  const int threads = static_cast<int>(std::min<int64_t>(threadsFor(4.0 * units * nn * s.d), std::max<int64_t>(units, 1)));
  std::vector<double> partial(dBias ? static_cast<size_t>(threads * s.biasHeads * nn) : 0, 0.0);
  parallel(threads, [&](int t, int parts) {
    int64_t u0, u1;
    part(units, parts, t, &u0, &u1);
    std::vector<float> qs(nd), dp(nn);
    for (int64_t u = u0; u < u1; u++) {
      const float* qu = q.unit(u, s.heads);
      for (int64_t i = 0; i < nd; i++) qs[i] = qu[i] * s.scale;
      std::memcpy(dp.data(), dP + u * nn, nn * sizeof(float));
      scoresGrad(s, u, P + u * nn, dp.data(), k, qs.data(), dq, dk, dBias ? partial.data() + t * s.biasHeads * nn : nullptr);
    }
  });
  if (dBias) mergeBiasGrad(partial, threads, s.biasHeads * nn, dBias);
  return info.Env().Undefined();
}

// Gradients of WindowAttention, recomputing P: dV = P^T dO, dP = dO v^T, dS = P (dP - rowsum(dP P)),
// dq = scale dS k, dk = dS^T (q scale), dBias[h] = sum over windows of dS (biasHeads 1: over heads too).
// dq, dk, dv are written in the layout of q, k, v (for a packed qkv, side by side into one gradient); dOut has
// the output's. dBias is summed per thread over its fixed block of units in float64 and the blocks are added
// in thread order. params: 0 dOutOff, 1 qOff, 2 kOff, 3 vOff, 4 biasOff, 5 maskOff, 6 dqOff, 7 dkOff, 8 dvOff,
// 9 dBiasOff (-1: not wanted), 10.. shape as WindowAttention, 17 inLd, 18 outLd.
Napi::Value WindowAttentionGrad(const Napi::CallbackInfo& info) {
  Args a(info);
  const AttentionShape s = attentionShape(a, 10);
  const UnitLayout in = tokenLayout(s, a.i64(17)), outL = tokenLayout(s, a.i64(18));
  const int64_t units = s.bw * s.heads, nd = s.n * s.d, nn = s.n * s.n;
  const AttentionOperand dOut = attentionOperand(a, 0, s, outL);
  const AttentionOperand q = attentionOperand(a, 1, s, in), k = attentionOperand(a, 2, s, in), v = attentionOperand(a, 3, s, in);
  const AttentionOperand dq = attentionOperand(a, 6, s, in), dk = attentionOperand(a, 7, s, in), dv = attentionOperand(a, 8, s, in);
  const float *bias, *mask;
  biasAndMask(a, 4, s, &bias, &mask);
  float* dBias = a.i64(9) >= 0 ? a.f32(9, s.biasHeads * nn) : nullptr;
  const int threads = static_cast<int>(std::min<int64_t>(threadsFor(8.0 * units * nn * s.d), std::max<int64_t>(units, 1)));
  std::vector<double> partial(dBias ? static_cast<size_t>(threads * s.biasHeads * nn) : 0, 0.0);
  const int N = static_cast<int>(s.n), D = static_cast<int>(s.d);
  const int inLd = static_cast<int>(in.ld), outLd = static_cast<int>(outL.ld);
  parallel(threads, [&](int t, int parts) {
    int64_t u0, u1;
    part(units, parts, t, &u0, &u1);
    std::vector<float> qs(nd), p(nn), dp(nn);
    for (int64_t u = u0; u < u1; u++) {
      attentionProbs(s, u, q.unit(u, s.heads), k.unit(u, s.heads), in.ld, bias, mask, qs.data(), p.data());
      const float* dO = dOut.unit(u, s.heads);
      sgemm(true, false, N, D, N, 1.f, p.data(), N, dO, outLd, dv.unit(u, s.heads), inLd);
      sgemm(false, true, N, N, D, 1.f, dO, outLd, v.unit(u, s.heads), inLd, dp.data(), N);
      scoresGrad(s, u, p.data(), dp.data(), k, qs.data(), dq, dk, dBias ? partial.data() + t * s.biasHeads * nn : nullptr);
    }
  });
  if (dBias) mergeBiasGrad(partial, threads, s.biasHeads * nn, dBias);
  return info.Env().Undefined();
}

// ------------------------------------------------------------------------------------ channel attention

// Restormer's MDTA (transposed attention across channels) per image b and head h, on q, k, v read straight from
// the packed qkv_dwconv output [B, H, W, 3C] (channel j of q, k, v belongs to head floor(j / c), c = C / heads):
// with Q, K, V the head's [T, c] token x channel blocks (T = H*W, rows 3C apart),
//   rq_i = 1 / max(||Q[:, i]||, 1e-12), rk_j likewise, S = Q^T K, P = softmax_j(S_ij rq_i rk_j t_h), O = V P^T,
// O written into [B, H, W, C] at the head's channels (what project_out reads). The tf-op composition
// (src/models/restormer.ts) runs ~25 kernels per attention forward and ~50 backward, on [B*heads, T, c] copies.
struct ChannelShape {
  int64_t b, heads, t, c;
  int64_t channels() const { return heads * c; }
  int64_t units() const { return b * heads; }
  int64_t qkvFloats() const { return b * t * 3 * channels(); }
  int64_t outFloats() const { return b * t * channels(); }
};

ChannelShape channelShape(const Args& a, size_t k) { return ChannelShape{a.i64(k), a.i64(k + 1), a.i64(k + 2), a.i64(k + 3)}; }

// Work items: `chunks` token ranges of each unit (b, h), item i = unit i / chunks, range i % chunks. Fixed by
// shape and thread count; the probabilities kernel, the output kernel and the fused one share it, so a hooked
// run (probabilities, then the output) gives the fused kernel's bits.
struct ChannelSplit {
  int threads;
  int64_t chunks;
  int64_t items;
};

ChannelSplit channelSplit(const ChannelShape& s) {
  const int64_t units = std::max<int64_t>(s.units(), 1);
  int threads = threadsFor(4.0 * units * s.t * s.c * s.c);
  const int64_t chunks = units >= threads ? 1 : std::min<int64_t>((threads + units - 1) / units, std::max<int64_t>(s.t, 1));
  threads = static_cast<int>(std::min<int64_t>(threads, units * chunks));
  return ChannelSplit{threads, chunks, units * chunks};
}

// One unit's Q, K, V blocks of a packed [B, T, 3C] tensor (qkv or its gradient), rows 3C apart.
template <typename T>
struct ChannelUnit {
  T *q, *k, *v;
  int64_t ld;
};

template <typename T>
ChannelUnit<T> channelUnit(const ChannelShape& s, T* qkv, int64_t u) {
  const int64_t C = s.channels(), img = u / s.heads, h = u % s.heads;
  T* base = qkv + img * s.t * 3 * C + h * s.c;
  return ChannelUnit<T>{base, base + C, base + 2 * C, 3 * C};
}

// Offset of unit u's head channels in an output-layout tensor [B, T, C] (rows C apart).
inline int64_t outUnitOffset(const ChannelShape& s, int64_t u) { return (u / s.heads) * s.t * s.channels() + (u % s.heads) * s.c; }

// Runs body(u, t0, t1) for every work item on the split's threads.
template <typename F>
void forChannelItems(const ChannelShape& s, const ChannelSplit& sp, F body) {
  parallel(sp.threads, [&](int t, int parts) {
    int64_t i0, i1;
    part(sp.items, parts, t, &i0, &i1);
    for (int64_t i = i0; i < i1; i++) {
      int64_t t0, t1;
      part(s.t, static_cast<int>(sp.chunks), static_cast<int>(i % sp.chunks), &t0, &t1);
      body(i / sp.chunks, i, t0, t1);
    }
  });
}

// The token sums of the forward per unit: S = Q^T K and the squared column norms (float64), and dP = dO^T V
// when dOut is given (dO: the unit's output-gradient rows, C apart). Each item sums its token range (S, dP by
// one GEMM each); the items of a unit are added in range order in float64.
struct ChannelSums {
  std::vector<float> s, dp;     // [units, c, c]
  std::vector<double> nq, nk;  // [units, c]: squared norms
};

ChannelSums channelSums(const ChannelShape& s, const ChannelSplit& sp, const float* qkv, const float* dOut, bool scores) {
  const int64_t cc = s.c * s.c, units = s.units(), C = s.channels();
  const int c = static_cast<int>(s.c);
  std::vector<float> ps(scores ? sp.items * cc : 0), pdp(dOut ? sp.items * cc : 0);
  std::vector<double> pq(scores ? sp.items * s.c : 0, 0.0), pk(scores ? sp.items * s.c : 0, 0.0);
  forChannelItems(s, sp, [&](int64_t u, int64_t i, int64_t t0, int64_t t1) {
    const ChannelUnit<const float> x = channelUnit(s, qkv, u);
    const int rows = static_cast<int>(t1 - t0), ld = static_cast<int>(x.ld);
    if (scores) {
      float* si = ps.data() + i * cc;
      if (rows == 0) std::fill(si, si + cc, 0.f);
      else sgemm(true, false, c, c, rows, 1.f, x.q + t0 * x.ld, ld, x.k + t0 * x.ld, ld, si, c);
      double* qi = pq.data() + i * s.c;
      double* ki = pk.data() + i * s.c;
      for (int64_t r = t0; r < t1; r++) {
        const float* qr = x.q + r * x.ld;
        const float* kr = x.k + r * x.ld;
        for (int64_t j = 0; j < s.c; j++) {
          qi[j] += static_cast<double>(qr[j]) * qr[j];
          ki[j] += static_cast<double>(kr[j]) * kr[j];
        }
      }
    }
    if (dOut) {
      float* di = pdp.data() + i * cc;
      if (rows == 0) std::fill(di, di + cc, 0.f);
      else sgemm(true, false, c, c, rows, 1.f, dOut + outUnitOffset(s, u) + t0 * C, static_cast<int>(C), x.v + t0 * x.ld, ld, di, c);
    }
  });
  ChannelSums out;
  const auto merge = [&](const std::vector<float>& partial, std::vector<float>& into) {
    into.assign(units * cc, 0.f);
    for (int64_t u = 0; u < units; u++)
      for (int64_t e = 0; e < cc; e++) {
        double sum = 0;
        for (int64_t ch = 0; ch < sp.chunks; ch++) sum += partial[(u * sp.chunks + ch) * cc + e];
        into[u * cc + e] = static_cast<float>(sum);
      }
  };
  if (scores) {
    merge(ps, out.s);
    out.nq.assign(units * s.c, 0.0);
    out.nk.assign(units * s.c, 0.0);
    for (int64_t u = 0; u < units; u++)
      for (int64_t ch = 0; ch < sp.chunks; ch++)
        for (int64_t j = 0; j < s.c; j++) {
          out.nq[u * s.c + j] += pq[(u * sp.chunks + ch) * s.c + j];
          out.nk[u * s.c + j] += pk[(u * sp.chunks + ch) * s.c + j];
        }
  }
  if (dOut) merge(pdp, out.dp);
  return out;
}

constexpr float kChannelNormEps = 1e-12f;  // F.normalize's eps

// 1 / max(||x||, eps) from a squared norm.
inline float inverseNorm(double squared) { return 1.f / std::max(static_cast<float>(std::sqrt(squared)), kChannelNormEps); }

// P of every unit [units, c, c] from the sums: softmax over j of (S_ij rq_i rk_j) t_h (softmaxRow).
void channelProbs(const ChannelShape& s, const ChannelSums& sums, const float* temperature, float* p) {
  const int64_t cc = s.c * s.c;
  for (int64_t u = 0; u < s.units(); u++) {
    const float t = temperature[u % s.heads];
    const double* nq = sums.nq.data() + u * s.c;
    const double* nk = sums.nk.data() + u * s.c;
    for (int64_t i = 0; i < s.c; i++) {
      const float rq = inverseNorm(nq[i]);
      const float* si = sums.s.data() + u * cc + i * s.c;
      float* row = p + u * cc + i * s.c;
      for (int64_t j = 0; j < s.c; j++) row[j] = si[j] * rq * inverseNorm(nk[j]) * t;
      softmaxRow(row, s.c);
    }
  }
}

// O = V P^T for every unit into out [B, H, W, C].
void channelApply(const ChannelShape& s, const ChannelSplit& sp, const float* qkv, const float* p, float* out) {
  const int c = static_cast<int>(s.c), C = static_cast<int>(s.channels());
  forChannelItems(s, sp, [&](int64_t u, int64_t, int64_t t0, int64_t t1) {
    if (t1 <= t0) return;
    const ChannelUnit<const float> x = channelUnit(s, qkv, u);
    sgemm(false, true, static_cast<int>(t1 - t0), c, c, 1.f, x.v + t0 * x.ld, static_cast<int>(x.ld), p + u * s.c * s.c, c,
          out + outUnitOffset(s, u) + t0 * C, C);
  });
}

// The per-head temperatures at params[k] (bounds-checked).
const float* channelTemperature(const Args& a, size_t k, const ChannelShape& s) { return a.f32(k, s.heads); }

// Fused forward: O from qkv and the temperatures. params: 0 qkvOff, 1 temperatureOff, 2 outOff, 3.. b, heads, t, c.
Napi::Value ChannelAttention(const Napi::CallbackInfo& info) {
  Args a(info);
  const ChannelShape s = channelShape(a, 3);
  const float* qkv = a.f32(0, s.qkvFloats());
  const float* temperature = channelTemperature(a, 1, s);
  float* out = a.f32(2, s.outFloats());
  const ChannelSplit sp = channelSplit(s);
  const ChannelSums sums = channelSums(s, sp, qkv, nullptr, true);
  std::vector<float> p(s.units() * s.c * s.c);
  channelProbs(s, sums, temperature, p.data());
  channelApply(s, sp, qkv, p.data(), out);
  return info.Env().Undefined();
}

// P alone [B, heads, c, c], with the fused kernel's bits. params: 0 qkvOff, 1 temperatureOff, 2 pOff, 3.. shape.
Napi::Value ChannelAttentionProbs(const Napi::CallbackInfo& info) {
  Args a(info);
  const ChannelShape s = channelShape(a, 3);
  const float* qkv = a.f32(0, s.qkvFloats());
  const float* temperature = channelTemperature(a, 1, s);
  float* p = a.f32(2, s.units() * s.c * s.c);
  const ChannelSplit sp = channelSplit(s);
  channelProbs(s, channelSums(s, sp, qkv, nullptr, true), temperature, p);
  return info.Env().Undefined();
}

// O = V P^T from qkv and given probabilities (a hooked run's), with the fused kernel's bits for the same P.
// params: 0 qkvOff, 1 pOff, 2 outOff, 3.. shape.
Napi::Value ChannelAttentionApply(const Napi::CallbackInfo& info) {
  Args a(info);
  const ChannelShape s = channelShape(a, 3);
  const float* qkv = a.f32(0, s.qkvFloats());
  const float* p = a.f32(1, s.units() * s.c * s.c);
  float* out = a.f32(2, s.outFloats());
  channelApply(s, channelSplit(s), qkv, p, out);
  return info.Env().Undefined();
}

// Per unit, from dP and the sums: dL = P (dP - rowsum(dP P)), with C_ij = S_ij rq_i rk_j the cosine,
// dt_h += sum dL C, dC = t dL, dS = dC rq_i rk_j, and the norm terms: dQ[:, i] += aq_i Q[:, i] with
// aq_i = -rq_i^3 sum_j dC_ij S_ij rk_j (0 where the norm is clamped at eps: max passes no gradient there), ak_j
// likewise. p: the unit probabilities (recomputed); ds [units, c, c], aq/ak [units, c] out; dt per unit out.
void channelScoresGrad(const ChannelShape& s, const ChannelSums& sums, const float* temperature, const float* p, const float* dp,
                       float* ds, float* aq, float* ak, double* dtUnit) {
  const int64_t cc = s.c * s.c;
  std::vector<float> rq(s.c), rk(s.c), dl(cc);
  std::vector<double> gq(s.c), gk(s.c);
  for (int64_t u = 0; u < s.units(); u++) {
    const float t = temperature[u % s.heads];
    for (int64_t j = 0; j < s.c; j++) {
      rq[j] = inverseNorm(sums.nq[u * s.c + j]);
      rk[j] = inverseNorm(sums.nk[u * s.c + j]);
    }
    const float* pu = p + u * cc;
    const float* dpu = dp + u * cc;
    const float* su = sums.s.data() + u * cc;
    float* dsu = ds + u * cc;
    std::fill(gq.begin(), gq.end(), 0.0);
    std::fill(gk.begin(), gk.end(), 0.0);
    double dt = 0;
    for (int64_t i = 0; i < s.c; i++) {
      double dot = 0;
      for (int64_t j = 0; j < s.c; j++) dot += static_cast<double>(dpu[i * s.c + j]) * pu[i * s.c + j];
      const float fd = static_cast<float>(dot);
      for (int64_t j = 0; j < s.c; j++) {
        const int64_t e = i * s.c + j;
        const float dL = pu[e] * (dpu[e] - fd);
        const float cosine = su[e] * rq[i] * rk[j];
        dt += static_cast<double>(dL) * cosine;
        const float dC = dL * t;
        dsu[e] = dC * rq[i] * rk[j];
        const double dcs = static_cast<double>(dC) * su[e];
        gq[i] += dcs * rk[j];
        gk[j] += dcs * rq[i];
      }
    }
    dtUnit[u] = dt;
    for (int64_t j = 0; j < s.c; j++) {
      const bool q = std::sqrt(sums.nq[u * s.c + j]) >= kChannelNormEps, k = std::sqrt(sums.nk[u * s.c + j]) >= kChannelNormEps;
      aq[u * s.c + j] = q ? static_cast<float>(-gq[j] * rq[j] * rq[j] * rq[j]) : 0.f;
      ak[u * s.c + j] = k ? static_cast<float>(-gk[j] * rk[j] * rk[j] * rk[j]) : 0.f;
    }
  }
}

// dt [heads] = the units' dt summed over images in image order.
void channelTemperatureGrad(const ChannelShape& s, const std::vector<double>& dtUnit, float* dt) {
  for (int64_t h = 0; h < s.heads; h++) {
    double sum = 0;
    for (int64_t img = 0; img < s.b; img++) sum += dtUnit[img * s.heads + h];
    dt[h] = static_cast<float>(sum);
  }
}

// Which parts of dqkv a gradient kernel writes (the others get zeros).
enum ChannelGradParts { kGradQK = 1, kGradV = 2 };

// Writes the token-range rows of dqkv: dQ = K dS^T + aq Q and dK = Q dS + ak K (kGradQK), dV = dO P (kGradV).
void channelInputGrad(const ChannelShape& s, const ChannelSplit& sp, const float* qkv, const float* dOut, const float* p, const float* ds,
                      const float* aq, const float* ak, int parts, float* dqkv) {
  const int c = static_cast<int>(s.c), C = static_cast<int>(s.channels());
  forChannelItems(s, sp, [&](int64_t u, int64_t, int64_t t0, int64_t t1) {
    if (t1 <= t0) return;
    const ChannelUnit<const float> x = channelUnit(s, qkv, u);
    const ChannelUnit<float> g = channelUnit(s, dqkv, u);
    float *dq = g.q, *dk = g.k, *dv = g.v;
    const int rows = static_cast<int>(t1 - t0), ld = static_cast<int>(x.ld);
    const int64_t cc = s.c * s.c;
    const auto zero = [&](float* block) {
      for (int64_t r = t0; r < t1; r++) std::fill(block + r * x.ld, block + r * x.ld + s.c, 0.f);
    };
    if (parts & kGradQK) {
      sgemm(false, true, rows, c, c, 1.f, x.k + t0 * x.ld, ld, ds + u * cc, c, dq + t0 * x.ld, ld);
      sgemm(false, false, rows, c, c, 1.f, x.q + t0 * x.ld, ld, ds + u * cc, c, dk + t0 * x.ld, ld);
      const float* aqu = aq + u * s.c;
      const float* aku = ak + u * s.c;
      for (int64_t r = t0; r < t1; r++) {
        const float* qr = x.q + r * x.ld;
        const float* kr = x.k + r * x.ld;
        float* dqr = dq + r * x.ld;
        float* dkr = dk + r * x.ld;
        for (int64_t j = 0; j < s.c; j++) {
          dqr[j] += aqu[j] * qr[j];
          dkr[j] += aku[j] * kr[j];
        }
      }
    } else {
      zero(dq);
      zero(dk);
    }
    if (parts & kGradV) sgemm(false, false, rows, c, c, 1.f, dOut + outUnitOffset(s, u) + t0 * C, C, p + u * cc, c, dv + t0 * x.ld, ld);
    else zero(dv);
  });
}

// The gradients through P, recomputing the token sums and P: dP = dO^T V when dOut is given (then also
// dV = dO P), else the given dP; then channelScoresGrad, the q and k parts of dqkv (channelInputGrad) and dt.
void channelGradThroughProbs(const ChannelShape& s, const float* qkv, const float* temperature, const float* dOut, const float* dP,
                             float* dqkv, float* dt) {
  const int64_t cc = s.c * s.c;
  const ChannelSplit sp = channelSplit(s);
  const ChannelSums sums = channelSums(s, sp, qkv, dOut, true);
  std::vector<float> p(s.units() * cc), ds(s.units() * cc), aq(s.units() * s.c), ak(s.units() * s.c);
  std::vector<double> dtUnit(s.units());
  channelProbs(s, sums, temperature, p.data());
  channelScoresGrad(s, sums, temperature, p.data(), dOut ? sums.dp.data() : dP, ds.data(), aq.data(), ak.data(), dtUnit.data());
  channelInputGrad(s, sp, qkv, dOut, p.data(), ds.data(), aq.data(), ak.data(), dOut ? kGradQK | kGradV : kGradQK, dqkv);
  channelTemperatureGrad(s, dtUnit, dt);
}

// Gradients of ChannelAttention: dqkv (all three parts) and dt.
// params: 0 dOutOff, 1 qkvOff, 2 temperatureOff, 3 dqkvOff, 4 dTemperatureOff, 5.. shape.
Napi::Value ChannelAttentionGrad(const Napi::CallbackInfo& info) {
  Args a(info);
  const ChannelShape s = channelShape(a, 5);
  channelGradThroughProbs(s, a.f32(1, s.qkvFloats()), channelTemperature(a, 2, s), a.f32(0, s.outFloats()), nullptr, a.f32(3, s.qkvFloats()),
                          a.f32(4, s.heads));
  return info.Env().Undefined();
}

// Gradients of ChannelAttentionProbs from dP: dqkv (q and k parts; v zeros) and dt. P is recomputed (same bits as
// the saved one). params: 0 dPOff, 1 qkvOff, 2 temperatureOff, 3 dqkvOff, 4 dTemperatureOff, 5.. shape.
Napi::Value ChannelAttentionProbsGrad(const Napi::CallbackInfo& info) {
  Args a(info);
  const ChannelShape s = channelShape(a, 5);
  channelGradThroughProbs(s, a.f32(1, s.qkvFloats()), channelTemperature(a, 2, s), nullptr, a.f32(0, s.units() * s.c * s.c),
                          a.f32(3, s.qkvFloats()), a.f32(4, s.heads));
  return info.Env().Undefined();
}

// Gradients of ChannelAttentionApply: dqkv (v part = dO P; q, k zeros) and dP = dO^T V.
// params: 0 dOutOff, 1 qkvOff, 2 pOff, 3 dqkvOff, 4 dPOff, 5.. shape.
Napi::Value ChannelAttentionApplyGrad(const Napi::CallbackInfo& info) {
  Args a(info);
  const ChannelShape s = channelShape(a, 5);
  const int64_t cc = s.c * s.c;
  const float* dOut = a.f32(0, s.outFloats());
  const float* qkv = a.f32(1, s.qkvFloats());
  const float* p = a.f32(2, s.units() * cc);
  float* dqkv = a.f32(3, s.qkvFloats());
  float* dP = a.f32(4, s.units() * cc);
  const ChannelSplit sp = channelSplit(s);
  const ChannelSums sums = channelSums(s, sp, qkv, dOut, false);
  std::copy(sums.dp.begin(), sums.dp.end(), dP);
  channelInputGrad(s, sp, qkv, dOut, p, nullptr, nullptr, nullptr, kGradV, dqkv);
  return info.Env().Undefined();
}

// ------------------------------------------------------------------------------------------- LayerNorm

// Mean and 1/sqrt(biased variance + eps) of one row, accumulated in double.
// Mean and 1/sqrt(var + eps) of one row, in float64. Each sum runs in 8 interleaved lanes (element i into lane
// i % 8) that are added in lane order at the end: a fixed order, so the bits repeat, and the lanes vectorise; one
// serial float64 sum was latency-bound (~4 ms for Restormer's [16384, 96] rows).
inline void rowMoments(const float* __restrict x, int64_t n, double eps, double* mean, double* rstd) {
  constexpr int kLanes = 8;
  const int64_t body = n - n % kLanes;
  double lane[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < body; i += kLanes)
    for (int l = 0; l < kLanes; l++) lane[l] += x[i + l];
  for (int64_t i = body; i < n; i++) lane[i % kLanes] += x[i];
  double sum = 0;
  for (int l = 0; l < kLanes; l++) sum += lane[l];
  const double mu = sum / n;
  double sqLane[kLanes] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < body; i += kLanes)
    for (int l = 0; l < kLanes; l++) {
      const double d = x[i + l] - mu;
      sqLane[l] += d * d;
    }
  for (int64_t i = body; i < n; i++) {
    const double d = x[i] - mu;
    sqLane[i % kLanes] += d * d;
  }
  double sq = 0;
  for (int l = 0; l < kLanes; l++) sq += sqLane[l];
  *mean = mu;
  *rstd = 1.0 / std::sqrt(sq / n + eps);
}

// y = (x - mean) * rstd * w + b over rows of n (nn.LayerNorm; centred = 1), or y = x * rstd * w (Restormer's
// BiasFree_LayerNorm, whose variance is still mean-centred; centred = 0). params: 0 xOff, 1 wOff, 2 bOff (-1:
// none), 3 yOff, 4 rows, 5 n, 6 eps, 7 centred.
Napi::Value LayerNorm(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t rows = a.i64(4), n = a.i64(5);
  const double eps = a.p.at(6);
  const bool centred = a.i64(7) != 0;
  const float* x = a.f32(0, rows * n);
  const float* w = a.f32(1, n);
  const float* b = a.i64(2) >= 0 ? a.f32(2, n) : nullptr;
  float* y = a.f32(3, rows * n);
  const int threads = streamThreads(rows * n, rows);
  parallel(threads, [&](int t, int parts) {
    int64_t r0, r1;
    part(rows, parts, t, &r0, &r1);
    const float* __restrict ws = w;
    const float* __restrict bs = b;
    for (int64_t r = r0; r < r1; r++) {
      const float* __restrict xr = x + r * n;
      float* __restrict yr = y + r * n;
      double mean, rstd;
      rowMoments(xr, n, eps, &mean, &rstd);
      const float m = centred ? static_cast<float>(mean) : 0.f, s = static_cast<float>(rstd);
      if (bs) for (int64_t i = 0; i < n; i++) yr[i] = (xr[i] - m) * s * ws[i] + bs[i];
      else for (int64_t i = 0; i < n; i++) yr[i] = (xr[i] - m) * s * ws[i];
    }
  });
  return info.Env().Undefined();
}

// Gradients of LayerNorm: dx, dw and db (db only when dbOff >= 0). With g = dy * w, r = rstd, xc = x - mean:
//   centred:   xhat = xc r,  dx = r (g - mean(g) - xhat mean(g xhat)),  dw = sum dy xhat,  db = sum dy
//   BiasFree:  y = x r w,    dx = r g - r^3 xc mean(g x),              dw = sum dy x r
// dw/db are sums over rows: each thread sums a fixed contiguous block of rows in double, and the blocks are added
// in thread order, so a thread count gives the same bits every time. params: 0 dyOff, 1 xOff, 2 wOff, 3 dxOff,
// 4 dwOff, 5 dbOff (-1: none), 6 rows, 7 n, 8 eps, 9 centred.
Napi::Value LayerNormGrad(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t rows = a.i64(6), n = a.i64(7);
  const double eps = a.p.at(8);
  const bool centred = a.i64(9) != 0;
  const float* dy = a.f32(0, rows * n);
  const float* x = a.f32(1, rows * n);
  const float* w = a.f32(2, n);
  float* dx = a.f32(3, rows * n);
  float* dw = a.f32(4, n);
  float* db = a.i64(5) >= 0 ? a.f32(5, n) : nullptr;
  const int threads = streamThreads(rows * n, rows);
  std::vector<double> partW(static_cast<size_t>(threads * n), 0.0), partB(static_cast<size_t>(threads * n), 0.0);
  parallel(threads, [&](int t, int parts) {
    int64_t r0, r1;
    part(rows, parts, t, &r0, &r1);
    double* __restrict pw = partW.data() + t * n;
    double* __restrict pb = partB.data() + t * n;
    const float* __restrict ws = w;
    for (int64_t r = r0; r < r1; r++) {
      const float* __restrict xr = x + r * n;
      const float* __restrict gr = dy + r * n;
      float* __restrict dxr = dx + r * n;
      double mean, rstd;
      rowMoments(xr, n, eps, &mean, &rstd);
      double sg = 0, sgx = 0;  // sum g, sum g * (xhat or x)
      for (int64_t i = 0; i < n; i++) {
        const double g = static_cast<double>(gr[i]) * ws[i];
        const double xi = centred ? (xr[i] - mean) * rstd : xr[i];
        sg += g;
        sgx += g * xi;
        pw[i] += static_cast<double>(gr[i]) * (centred ? xi : xi * rstd);
        pb[i] += gr[i];
      }
      const double mg = sg / n, mgx = sgx / n;
      for (int64_t i = 0; i < n; i++) {
        const double g = static_cast<double>(gr[i]) * ws[i];
        const double xc = xr[i] - mean;
        dxr[i] = static_cast<float>(centred ? rstd * (g - mg - xc * rstd * mgx) : rstd * g - rstd * rstd * rstd * xc * mgx);
      }
    }
  });
  for (int64_t i = 0; i < n; i++) {
    double sw = 0, sb = 0;
    for (int t = 0; t < threads; t++) {
      sw += partW[t * n + i];
      sb += partB[t * n + i];
    }
    dw[i] = static_cast<float>(sw);
    if (db) db[i] = static_cast<float>(sb);
  }
  return info.Env().Undefined();
}

// ------------------------------------------------------------------------------------------------ Adam

// The constants of an Adam/AdamW update, each rounded to float32 as a tfjs scalar is.
struct AdamConstants {
  float decay, l2, b1, b1c, b2, b2c, bc2, eps, step;
  bool hasDecay, decoupled;
};

// Elements [i0, i1) of one update: the same float32 operations in the same order as the tf-op composition
// (src/engine/wasm/adam-step.ts), with FMA contraction off for this function only, so both paths give the same bits.
// The decay branch is a template argument and the constants are locals, so the loop has no control flow and GCC
// vectorises it (with -fno-math-errno, binding.gyp; lane sqrt and divide round as the scalar ones): 8M elements
// 43 -> 11 ms on one thread, 6.8 on two (the scalar loop was compute-bound; Restormer has 26M parameters).
template <bool kDecay, bool kDecoupled>
__attribute__((optimize("fp-contract=off"))) void adamLoop(const AdamConstants& k, const float* __restrict p, const float* __restrict m,
                                                            const float* __restrict v, const float* __restrict g, float* __restrict pOut,
                                                            float* __restrict mOut, float* __restrict vOut, int64_t i0, int64_t i1) {
  const float decay = k.decay, l2 = k.l2, b1 = k.b1, b1c = k.b1c, b2 = k.b2, b2c = k.b2c, bc2 = k.bc2, eps = k.eps, step = k.step;
  for (int64_t i = i0; i < i1; i++) {
    float pi = p[i], gi = g[i];
    if (kDecay) {
      if (kDecoupled) pi = pi * decay;
      else gi = gi + p[i] * l2;
    }
    const float mi = m[i] * b1 + gi * b1c;
    const float vi = v[i] * b2 + (gi * gi) * b2c;
    const float denom = std::sqrt(vi) / bc2 + eps;
    pOut[i] = pi - (mi / denom) * step;
    mOut[i] = mi;
    vOut[i] = vi;
  }
}

void adamRange(const AdamConstants& k, const float* p, const float* m, const float* v, const float* g, float* pOut, float* mOut,
               float* vOut, int64_t i0, int64_t i1) {
  if (!k.hasDecay) adamLoop<false, false>(k, p, m, v, g, pOut, mOut, vOut, i0, i1);
  else if (k.decoupled) adamLoop<true, true>(k, p, m, v, g, pOut, mOut, vOut, i0, i1);
  else adamLoop<true, false>(k, p, m, v, g, pOut, mOut, vOut, i0, i1);
}

// One Adam/AdamW update. params: 0 pOff, 1 mOff, 2 vOff, 3 gOff, 4 pOut, 5 mOut, 6 vOut, 7 count, 8 lr, 9 beta1,
// 10 beta2, 11 eps, 12 weightDecay, 13 decoupled, 14 bc1, 15 bc2Sqrt.
Napi::Value AdamStep(const Napi::CallbackInfo& info) {
  Args a(info);
  const int64_t n = a.i64(7);
  const float* p = a.f32(0, n);
  const float* m = a.f32(1, n);
  const float* v = a.f32(2, n);
  const float* g = a.f32(3, n);
  float* pOut = a.f32(4, n);
  float* mOut = a.f32(5, n);
  float* vOut = a.f32(6, n);
  const double lr = a.p.at(8), b1 = a.p.at(9), b2 = a.p.at(10), eps = a.p.at(11), wd = a.p.at(12);
  const AdamConstants k{static_cast<float>(1 - lr * wd), static_cast<float>(wd), static_cast<float>(b1),
                        static_cast<float>(1 - b1), static_cast<float>(b2), static_cast<float>(1 - b2),
                        static_cast<float>(a.p.at(15)), static_cast<float>(eps), static_cast<float>(lr / a.p.at(14)),
                        wd != 0, a.i64(13) != 0};
  const int threads = streamThreads(n, n);
  parallel(threads, [&](int t, int parts) {
    int64_t i0, i1;
    part(n, parts, t, &i0, &i1);
    adamRange(k, p, m, v, g, pOut, mOut, vOut, i0, i1);
  });
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------- control

Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const int n = info[0].As<Napi::Number>().Int32Value();
  if (n < 1) throw Napi::RangeError::New(info.Env(), "irlens native: thread count must be >= 1");
  g_threads = n;
  return info.Env().Undefined();
}

Napi::Value Describe(const Napi::CallbackInfo& info) {
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("threads", g_threads);
  o.Set("library", std::string(openblas_get_config()));
  o.Set("core", std::string(openblas_get_corename()));
  o.Set("maxThreads", omp_get_num_procs());
  o.Set("winograd", g_winograd);
  o.Set("winogradCalls", static_cast<double>(irlens::winogradCalls()));
#ifdef IRLENS_HAVE_DNNL
  const dnnl_version_t* v = dnnl_version();
  if (g_dnnl) o.Set("conv", "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
#endif
  return o;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  openblas_set_num_threads(1);  // our threads split the work; OpenBLAS must not spawn its own inside them
  g_threads = std::max(1, omp_get_num_procs());
  const char* dnnlFlag = std::getenv("IRLENS_ONEDNN");
  g_dnnl = dnnlFlag == nullptr || std::string(dnnlFlag) != "0";
  const char* winogradFlag = std::getenv("IRLENS_WINOGRAD");
  g_winograd = winogradFlag == nullptr || std::string(winogradFlag) != "0";
#ifdef IRLENS_HAVE_DNNL
  const char* blockedFlag = std::getenv("IRLENS_ONEDNN_BLOCKED");
  g_dnnlBlocked = blockedFlag == nullptr || std::string(blockedFlag) != "0";
#endif
  exports.Set("matMul", Napi::Function::New(env, MatMul));
  exports.Set("conv2d", Napi::Function::New(env, Conv2D));
  exports.Set("depthwise", Napi::Function::New(env, Depthwise));
  exports.Set("convBackward", Napi::Function::New(env, ConvBackward));
  exports.Set("copy", Napi::Function::New(env, Copy));
  exports.Set("layerNorm", Napi::Function::New(env, LayerNorm));
  exports.Set("layerNormGrad", Napi::Function::New(env, LayerNormGrad));
  exports.Set("adamStep", Napi::Function::New(env, AdamStep));
  exports.Set("binary", Napi::Function::New(env, Binary));
  exports.Set("reduce", Napi::Function::New(env, Reduce));
  exports.Set("windowAttention", Napi::Function::New(env, WindowAttention));
  exports.Set("windowAttentionGrad", Napi::Function::New(env, WindowAttentionGrad));
  exports.Set("attentionProbs", Napi::Function::New(env, AttentionProbs));
  exports.Set("attentionProbsGrad", Napi::Function::New(env, AttentionProbsGrad));
  exports.Set("channelAttention", Napi::Function::New(env, ChannelAttention));
  exports.Set("channelAttentionGrad", Napi::Function::New(env, ChannelAttentionGrad));
  exports.Set("channelAttentionProbs", Napi::Function::New(env, ChannelAttentionProbs));
  exports.Set("channelAttentionProbsGrad", Napi::Function::New(env, ChannelAttentionProbsGrad));
  exports.Set("channelAttentionApply", Napi::Function::New(env, ChannelAttentionApply));
  exports.Set("channelAttentionApplyGrad", Napi::Function::New(env, ChannelAttentionApplyGrad));
  exports.Set("gelu", Napi::Function::New(env, Gelu));
  exports.Set("geluGrad", Napi::Function::New(env, GeluGrad));
  exports.Set("gatedGelu", Napi::Function::New(env, GatedGelu));
  exports.Set("gatedGeluGrad", Napi::Function::New(env, GatedGeluGrad));
  exports.Set("prelu", Napi::Function::New(env, Prelu));
  exports.Set("preluGrad", Napi::Function::New(env, PreluGrad));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads));
  exports.Set("describe", Napi::Function::New(env, Describe));
  return exports;
}

}  // namespace

NODE_API_MODULE(irlens_native, Init)
