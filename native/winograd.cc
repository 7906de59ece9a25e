// Winograd F(2x2, 3x3) (Lavin & Gray 2016) for 3x3 stride-1 'same' convs, NHWC, in four steps:
//   U[e] = G g G^T    per (input, output) channel pair: 16 transformed taps e from the 9 taps g
//   V[e] = B^T d B    per 2x2 output tile: 16 values from its 4x4 input patch d, for every input channel
//   M[e] = V[e] U[e]  16 GEMMs [tiles, ci] x [ci, co] (oneDNN's matmul when built with it, else OpenBLAS: its
//                     sgemm runs these short products at ~76 GFLOP/s here, oneDNN's at ~107)
//   y    = A^T M A    per tile: its 2x2 outputs from the 16 products, for every output channel
// The input gradient is the same conv with the filter flipped and transposed; the filter gradient is its adjoint:
// dU[e] = sum over tiles of V[e]^T (A dy A^T)[e], dg = G^T dU G.
// 16 multiplies per 4 outputs instead of 36: on the full-resolution MPRNet conv [1,128,128,128] x [3,3,128,128]
// 28 ms against oneDNN's direct brgconv 45 ms (one thread here; PyTorch runs the direct one). No library does it
// for us: oneDNN 2.6's own Winograd is F(4x4, 3x3), slower here (65.9 ms) and 2.5e-5 off; Debian's XNNPACK has no
// stable API. The transforms' coefficients are 0, +-1 and +-1/2, so the rounding stays that of a direct conv
// (max abs error against float64 1.6e-6 on that conv, oneDNN's direct 3.8e-6). F(4x4, 3x3) would save more
// multiplies but its coefficients (up to 8) cost about one decimal digit.
//
// Tiles are processed in blocks small enough for V and M to stay in L2; a block is one unit of work, and its
// size depends only on the channel counts, so every output is computed the same way on any thread count.
#include "winograd.h"

#include <cblas.h>
#include <omp.h>
#ifdef IRLENS_HAVE_DNNL
#include <dnnl.hpp>
#include <map>
#include <memory>
#include <tuple>
#endif

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

namespace irlens {
namespace {

constexpr int kTaps = 16;  // 4x4 transformed taps per tile
std::atomic<int64_t> g_calls{0};

// Tiles per block. Measured here on one thread (MPRNet's and SwinIR's channel counts): 32 tiles 0.61-0.74 of
// the direct conv's time, 64 0.55-0.70, 128 0.55-0.67, 256 0.63-0.69. Fixed, so the work split never depends
// on the thread count.
constexpr int64_t kTilesPerBlock = 128;

// A growing buffer whose data starts on a 64-byte boundary (whole cache lines and AVX-512 vectors for the
// transforms and the tap products, the same on every call).
struct AlignedBuffer {
  std::vector<float> storage;
  float* get(size_t floats) {
    if (storage.size() < floats + 16) storage.assign(floats + 16, 0.f);
    const uintptr_t p = reinterpret_cast<uintptr_t>(storage.data());
    return reinterpret_cast<float*>((p + 63) & ~static_cast<uintptr_t>(63));
  }
};

// One thread's buffer (V, M or oneDNN scratchpad), kept between calls so blocks do not page-fault.
float* threadBuffer(int role, size_t floats) {
  thread_local AlignedBuffer buffers[3];
  return buffers[role].get(floats);
}

// U[e][c][k] = (G g G^T)[e] for each input channel c and output channel k, G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1].
// Rows [c0, c1) of the filter transform (input channel c, every output channel k). The input-gradient choice is a
// template argument and the loops run over (c, k), so the forward case is a vectorised pass with no division.
template <bool kInputGradient>
void transformFilterRows(const float* f, int64_t ci, int64_t co, int64_t c0, int64_t c1, float* U) {
  const int64_t ck = ci * co;
  for (int64_t c = c0; c < c1; c++)
    for (int64_t k = 0; k < co; k++) {
      const int64_t idx = c * co + k;
      float g[3][3];
      for (int i = 0; i < 3; i++)
        for (int j = 0; j < 3; j++)
          // Input gradient: f is the forward filter [3, 3, k, c]; the tap (i, j) of the flipped conv is (2-i, 2-j).
          g[i][j] = kInputGradient ? f[((2 - i) * 3 + (2 - j)) * ck + k * ci + c] : f[(i * 3 + j) * ck + idx];
      float t[4][3];
      for (int j = 0; j < 3; j++) {
        t[0][j] = g[0][j];
        t[1][j] = 0.5f * (g[0][j] + g[1][j] + g[2][j]);
        t[2][j] = 0.5f * (g[0][j] - g[1][j] + g[2][j]);
        t[3][j] = g[2][j];
      }
      for (int i = 0; i < 4; i++) {
        float* u = U + (i * 4) * ck + idx;
        u[0] = t[i][0];
        u[ck] = 0.5f * (t[i][0] + t[i][1] + t[i][2]);
        u[2 * ck] = 0.5f * (t[i][0] - t[i][1] + t[i][2]);
        u[3 * ck] = t[i][2];
      }
    }
}

// The filter transform on `threads` threads (each element is computed alone, so the split changes no bit). With
// one block of tiles (MPRNet's 16x16 and 16x32 maps at 192 channels) it was most of the conv and ran serially.
void transformFilter(const float* f, int64_t ci, int64_t co, bool inputGradient, float* U, int threads) {
  const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, ci)));
#pragma omp parallel num_threads(parts) if (parts > 1 && ci * co >= 4096)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    const int64_t c0 = ci * t / nt, c1 = ci * (t + 1) / nt;
    if (inputGradient) transformFilterRows<true>(f, ci, co, c0, c1, U);
    else transformFilterRows<false>(f, ci, co, c0, c1, U);
  }
}

struct Geometry {
  int64_t n, h, w, ci, co, tilesY, tilesX;
};

// V[b][e][c] = (B^T d B)[e] for tiles t0.. t0+count, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. Taps outside
// the image read `zeros` (the padding).
void transformInput(const float* x, const Geometry& g, int64_t t0, int64_t count, const float* zeros, float* V) {
  const int64_t ci = g.ci;
  for (int64_t b = 0; b < count; b++) {
    const int64_t t = t0 + b, img = t / (g.tilesY * g.tilesX), r = t % (g.tilesY * g.tilesX);
    const int64_t ty = r / g.tilesX, tx = r % g.tilesX;
    const float* d[4][4];
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) {
        const int64_t iy = 2 * ty - 1 + i, ix = 2 * tx - 1 + j;
        d[i][j] = iy < 0 || iy >= g.h || ix < 0 || ix >= g.w ? zeros : x + ((img * g.h + iy) * g.w + ix) * ci;
      }
    float* __restrict v = V + b * kTaps * ci;
    for (int64_t c = 0; c < ci; c++) {
      float s[4][4];
      for (int j = 0; j < 4; j++) {
        s[0][j] = d[0][j][c] - d[2][j][c];
        s[1][j] = d[1][j][c] + d[2][j][c];
        s[2][j] = d[2][j][c] - d[1][j][c];
        s[3][j] = d[1][j][c] - d[3][j][c];
      }
      for (int i = 0; i < 4; i++) {
        v[(i * 4 + 0) * ci + c] = s[i][0] - s[i][2];
        v[(i * 4 + 1) * ci + c] = s[i][1] + s[i][2];
        v[(i * 4 + 2) * ci + c] = s[i][2] - s[i][1];
        v[(i * 4 + 3) * ci + c] = s[i][1] - s[i][3];
      }
    }
  }
}

// a[i] = m[i] A for the four rows i of one tile's 4x4 products of channel k (the first half of A^T m A).
inline void rowTransform(const float* m, int64_t co, int64_t k, float a[4][2]) {
  for (int i = 0; i < 4; i++) {
    const float* mi = m + i * 4 * co + k;
    a[i][0] = mi[0] + mi[co] + mi[2 * co];
    a[i][1] = mi[co] - mi[2 * co] - mi[3 * co];
  }
}

// y's 2x2 outputs of tiles t0.. t0+count from M[b][e][k]: A^T m A, A^T = [1 1 1 0; 0 1 -1 -1]. Outputs past an odd
// image edge are not written.
void transformOutput(const float* M, const Geometry& g, int64_t t0, int64_t count, float* y, PixelEpilogue ep, const void* epCtx) {
  const int64_t co = g.co;
  for (int64_t b = 0; b < count; b++) {
    const int64_t t = t0 + b, img = t / (g.tilesY * g.tilesX), r = t % (g.tilesY * g.tilesX);
    const int64_t ty = r / g.tilesX, tx = r % g.tilesX;
    const bool bottom = 2 * ty + 1 < g.h, right = 2 * tx + 1 < g.w;
    float* __restrict o00 = y + ((img * g.h + 2 * ty) * g.w + 2 * tx) * co;
    float* __restrict o01 = right ? o00 + co : nullptr;
    float* __restrict o10 = bottom ? o00 + g.w * co : nullptr;
    float* __restrict o11 = bottom && right ? o00 + (g.w + 1) * co : nullptr;
    const float* m = M + b * kTaps * co;
    if (o11 != nullptr) {
      for (int64_t k = 0; k < co; k++) {
        float a[4][2];
        rowTransform(m, co, k, a);
        o00[k] = a[0][0] + a[1][0] + a[2][0];
        o01[k] = a[0][1] + a[1][1] + a[2][1];
        o10[k] = a[1][0] - a[2][0] - a[3][0];
        o11[k] = a[1][1] - a[2][1] - a[3][1];
      }
    } else {
      for (int64_t k = 0; k < co; k++) {
        float a[4][2];
        rowTransform(m, co, k, a);
        o00[k] = a[0][0] + a[1][0] + a[2][0];
        if (o01) o01[k] = a[0][1] + a[1][1] + a[2][1];
        if (o10) o10[k] = a[1][0] - a[2][0] - a[3][0];
      }
    }
    if (ep != nullptr)
      for (float* o : {o00, o01, o10, o11})
        if (o != nullptr) ep(epCtx, o, co);
  }
}

// Z[b][e][k] = (A dy A^T)[e] of each tile's 2x2 output gradient (zero past an odd image edge), A = A^T's
// transpose [1 0; 1 1; 1 -1; 0 -1]: the gradient of y = A^T M A with respect to M.
void transformOutputGradient(const float* dy, const Geometry& g, int64_t t0, int64_t count, float* Z) {
  const int64_t co = g.co;
  for (int64_t b = 0; b < count; b++) {
    const int64_t t = t0 + b, img = t / (g.tilesY * g.tilesX), r = t % (g.tilesY * g.tilesX);
    const int64_t ty = r / g.tilesX, tx = r % g.tilesX;
    const bool bottom = 2 * ty + 1 < g.h, right = 2 * tx + 1 < g.w;
    const float* d00 = dy + ((img * g.h + 2 * ty) * g.w + 2 * tx) * co;
    const float* d01 = right ? d00 + co : nullptr;
    const float* d10 = bottom ? d00 + g.w * co : nullptr;
    const float* d11 = bottom && right ? d00 + (g.w + 1) * co : nullptr;
    float* __restrict z = Z + b * kTaps * co;
    for (int64_t k = 0; k < co; k++) {
      const float y00 = d00[k], y01 = d01 ? d01[k] : 0.f, y10 = d10 ? d10[k] : 0.f, y11 = d11 ? d11[k] : 0.f;
      const float r0[4] = {y00, y00 + y01, y00 - y01, -y01};
      const float r1[4] = {y10, y10 + y11, y10 - y11, -y11};
      for (int j = 0; j < 4; j++) {
        z[(0 * 4 + j) * co + k] = r0[j];
        z[(1 * 4 + j) * co + k] = r0[j] + r1[j];
        z[(2 * 4 + j) * co + k] = r0[j] - r1[j];
        z[(3 * 4 + j) * co + k] = -r1[j];
      }
    }
  }
}

// dW[i][j][c][k] = (G^T P G)[i][j] from the tap sums P[e][c][k]: the gradient of U = G g G^T with respect to g.
void transformFilterGradient(const float* P, int64_t ci, int64_t co, float* dW) {
  const int64_t ck = ci * co;
  for (int64_t idx = 0; idx < ck; idx++) {
    float t[3][4];
    for (int j = 0; j < 4; j++) {
      const float p0 = P[(0 * 4 + j) * ck + idx], p1 = P[(1 * 4 + j) * ck + idx], p2 = P[(2 * 4 + j) * ck + idx], p3 = P[(3 * 4 + j) * ck + idx];
      t[0][j] = p0 + 0.5f * (p1 + p2);
      t[1][j] = 0.5f * (p1 - p2);
      t[2][j] = 0.5f * (p1 + p2) + p3;
    }
    for (int i = 0; i < 3; i++) {
      dW[(i * 3 + 0) * ck + idx] = t[i][0] + 0.5f * (t[i][1] + t[i][2]);
      dW[(i * 3 + 1) * ck + idx] = 0.5f * (t[i][1] - t[i][2]);
      dW[(i * 3 + 2) * ck + idx] = 0.5f * (t[i][1] + t[i][2]) + t[i][3];
    }
  }
}

#ifdef IRLENS_HAVE_DNNL
// The 16 tap GEMMs of one block as one batched oneDNN matmul, V [16][rows][ci] (row stride 16 ci) times the
// filter U prepacked once per call in the primitive's layout. Created on the calling thread with one OpenMP
// thread, so each execution (inside our parallel region, a scratchpad per thread) runs single-threaded.
struct TapProduct {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::matmul prim;
  dnnl::memory::desc src, dst, weights;
  dnnl::memory packed;  // U itself when the primitive takes the plain layout, else a reordered copy
  size_t scratchBytes = 0;

  TapProduct(int64_t rows, int64_t ci, int64_t co) {
    using dnnl::memory;
    src = memory::desc({kTaps, rows, ci}, memory::data_type::f32, memory::dims{ci, kTaps * ci, 1});
    dst = memory::desc({kTaps, rows, co}, memory::data_type::f32, memory::dims{co, kTaps * co, 1});
    const memory::desc anyWeights({kTaps, ci, co}, memory::data_type::f32, memory::format_tag::any);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, anyWeights, dst), attr, engine);
    omp_set_num_threads(before);
    prim = dnnl::matmul(pd);
    weights = pd.weights_desc();
    packed = memory(weights, engine, nullptr);
    scratchBytes = pd.scratchpad_desc().get_size();
  }
  // Points the product at U, or (when the primitive wants its own layout) reorders U into it on one thread.
  void pack(float* U, int64_t ci, int64_t co) {
    using dnnl::memory;
    const memory::desc plain({kTaps, ci, co}, memory::data_type::f32, memory::format_tag::abc);
    if (weights == plain) {
      packed.set_data_handle(U);
      return;
    }
    memory user(plain, engine, U);
    if (!packed.get_data_handle()) packed = memory(weights, engine);
    const int before = omp_get_max_threads();
    omp_set_num_threads(1);
    dnnl::stream s(engine);
    dnnl::reorder(user, packed).execute(s, user, packed);
    s.wait();
    omp_set_num_threads(before);
  }
  void run(const float* V, float* M) {
    dnnl::stream s(engine);
    dnnl::memory srcMem(src, engine, const_cast<float*>(V)), dstMem(dst, engine, M);
    dnnl::memory scratch(dnnl::memory::desc({static_cast<int64_t>(scratchBytes)}, dnnl::memory::data_type::u8, dnnl::memory::format_tag::a), engine,
                         threadBuffer(2, scratchBytes / sizeof(float) + 1));
    prim.execute(s, {{DNNL_ARG_SRC, srcMem}, {DNNL_ARG_WEIGHTS, packed}, {DNNL_ARG_DST, dstMem}, {DNNL_ARG_SCRATCHPAD, scratch}});
    s.wait();
  }
};

// Primitives per (rows, ci, co), per JS thread; bounded like the conv cache (each holds a packed filter).
TapProduct& tapProduct(int64_t rows, int64_t ci, int64_t co) {
  thread_local std::map<std::tuple<int64_t, int64_t, int64_t>, std::unique_ptr<TapProduct>> cache;
  const auto key = std::make_tuple(rows, ci, co);
  auto it = cache.find(key);
  if (it == cache.end()) {
    if (cache.size() >= 64) cache.clear();
    it = cache.emplace(key, std::make_unique<TapProduct>(rows, ci, co)).first;
  }
  return *it->second;
}
#endif

}  // namespace

// Measured against oneDNN's direct conv on one thread: 64x64 channels 0.92-1.04 of its time, 48x48 1.05,
// 64x256 0.73, 96x96 and up 0.55-0.70 on large images; with 64 tiles (16x16) 0.76, with 16-32 tiles 2.9-3.7
// (the filter transform, 16/9 of the weights, is then most of the work).
bool winogradPays(int64_t n, int64_t h, int64_t w, int64_t ci, int64_t co) {
  return std::min(ci, co) >= 64 && ci * co >= 8192 && n * ((h + 1) / 2) * ((w + 1) / 2) >= 64;
}

int64_t winogradCalls() { return g_calls.load(); }

void winograd3x3(const float* x, const float* f, float* y, int64_t n, int64_t h, int64_t w, int64_t ci, int64_t co,
                 bool inputGradient, int threads, bool oneDnn, PixelEpilogue epilogue, const void* epilogueCtx) {
  g_calls++;
  const Geometry g{n, h, w, ci, co, (h + 1) / 2, (w + 1) / 2};
  const int64_t tiles = n * g.tilesY * g.tilesX, rows = kTilesPerBlock, blocks = (tiles + rows - 1) / rows;
  // Kept between calls, so a conv does not page-fault a fresh filter buffer.
  thread_local AlignedBuffer filterBuffer;
  float* U = filterBuffer.get(static_cast<size_t>(kTaps * ci * co));
  transformFilter(f, ci, co, inputGradient, U, threads);
  const std::vector<float> zeros(static_cast<size_t>(ci), 0.f);
#ifdef IRLENS_HAVE_DNNL
  // Full blocks and the last, shorter one (its own primitive: padding it to a full block cost up to 8x the
  // multiplies on MPRNet's 8x8 encoder level).
  const int64_t tailRows = tiles % rows;
  TapProduct* product = oneDnn && tiles >= rows ? &tapProduct(rows, ci, co) : nullptr;
  TapProduct* tailProduct = oneDnn && tailRows > 0 ? &tapProduct(tailRows, ci, co) : nullptr;
  for (TapProduct* p : {product, tailProduct})
    if (p != nullptr) p->pack(U, ci, co);
#endif
  const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, blocks)));
#pragma omp parallel num_threads(parts) if (parts > 1)
  {
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    // The tap product runs single-threaded inside each of our threads (oneDNN reads this at execution).
    omp_set_num_threads(1);
    // Contiguous blocks per thread; fewer threads than asked still cover every block.
    const int64_t b0 = blocks * t / nt, b1 = blocks * (t + 1) / nt;
    float* V = threadBuffer(0, static_cast<size_t>(rows * kTaps * ci));
    float* M = threadBuffer(1, static_cast<size_t>(rows * kTaps * co));
    for (int64_t blk = b0; blk < b1; blk++) {
      const int64_t t0 = blk * rows, count = std::min(rows, tiles - t0);
      transformInput(x, g, t0, count, zeros.data(), V);
#ifdef IRLENS_HAVE_DNNL
      if (oneDnn) (count == rows ? product : tailProduct)->run(V, M);
      else
#endif
        for (int e = 0; e < kTaps; e++)
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, static_cast<int>(count), static_cast<int>(co), static_cast<int>(ci), 1.f,
                      V + e * ci, static_cast<int>(kTaps * ci), U + e * ci * co, static_cast<int>(co), 0.f, M + e * co,
                      static_cast<int>(kTaps * co));
      transformOutput(M, g, t0, count, y, epilogue, epilogueCtx);
    }
  }
}


void winograd3x3FilterGradient(const float* x, const float* dy, float* dW, int64_t n, int64_t h, int64_t w, int64_t ci, int64_t co,
                               int threads, bool oneDnn) {
  g_calls++;
  const Geometry g{n, h, w, ci, co, (h + 1) / 2, (w + 1) / 2};
  const int64_t tiles = n * g.tilesY * g.tilesX, rows = kTilesPerBlock, blocks = (tiles + rows - 1) / rows;
  const int64_t tapFloats = kTaps * ci * co;
  const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(threads, blocks)));
  // One tap-sum buffer per part, added in part order at the end.
  thread_local AlignedBuffer sumBuffer;
  float* sums = sumBuffer.get(static_cast<size_t>(parts * tapFloats));
  const std::vector<float> zeros(static_cast<size_t>(ci), 0.f);
#pragma omp parallel num_threads(parts) if (parts > 1)
  {
    omp_set_num_threads(1);
    const int nt = omp_get_num_threads(), t = omp_get_thread_num();
    for (int part = t; part < parts; part += nt) {
      const int64_t b0 = blocks * part / parts, b1 = blocks * (part + 1) / parts;
      float* P = sums + part * tapFloats;
      float* V = threadBuffer(0, static_cast<size_t>(rows * kTaps * ci));
      float* Z = threadBuffer(1, static_cast<size_t>(rows * kTaps * co));
      for (int64_t blk = b0; blk < b1; blk++) {
        const int64_t t0 = blk * rows, count = std::min(rows, tiles - t0);
        transformInput(x, g, t0, count, zeros.data(), V);
        transformOutputGradient(dy, g, t0, count, Z);
        // P[e] (+)= V[e]^T Z[e]: the first block of a part writes, the others add.
        const float beta = blk == b0 ? 0.f : 1.f;
        for (int e = 0; e < kTaps; e++) {
#ifdef IRLENS_HAVE_DNNL
          if (oneDnn) {
            dnnl_sgemm('T', 'N', ci, co, count, 1.f, V + e * ci, kTaps * ci, Z + e * co, kTaps * co, beta, P + e * ci * co, co);
            continue;
          }
#endif
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, static_cast<int>(ci), static_cast<int>(co), static_cast<int>(count), 1.f,
                      V + e * ci, static_cast<int>(kTaps * ci), Z + e * co, static_cast<int>(kTaps * co), beta, P + e * ci * co,
                      static_cast<int>(co));
        }
      }
    }
  }
  for (int part = 1; part < parts; part++) {
    const float* P = sums + part * tapFloats;
    for (int64_t i = 0; i < tapFloats; i++) sums[i] += P[i];
  }
  transformFilterGradient(sums, ci, co, dW);
}

}  // namespace irlens
