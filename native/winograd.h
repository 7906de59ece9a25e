// Winograd F(2x2, 3x3) convolution and its gradients for the 3x3, stride-1, 'same' convs that dominate MPRNet (and
// appear in every family): see winograd.cc for why and how.
#pragma once
#include <cstdint>

namespace irlens {

// Applied to each output pixel's `channels` values right after they are written (bias, activation).
using PixelEpilogue = void (*)(const void* ctx, float* pixel, int64_t channels);

// Whether the Winograd conv pays for this image batch and these channel counts (below it the tile GEMMs are too
// thin, or too few tiles share the filter transform).
bool winogradPays(int64_t n, int64_t h, int64_t w, int64_t ci, int64_t co);

// y[n, h, w, co] = the 3x3 conv of NHWC x[n, h, w, ci], stride 1, dilation 1, zero padding 1 on every side.
// f is HWIO [3, 3, ci, co]; with `inputGradient` it is instead the filter [3, 3, co, ci] of the forward conv whose
// input gradient this computes (x = dy, y = dx: the conv with that filter flipped in space and transposed).
// Threads split whole blocks of tiles of a fixed size, so results are bit-identical for the same inputs on any
// thread count. The tap products run on oneDNN's matmul when the addon has it and `oneDnn` is set, else on
// OpenBLAS.
void winograd3x3(const float* x, const float* f, float* y, int64_t n, int64_t h, int64_t w, int64_t ci, int64_t co,
                 bool inputGradient, int threads, bool oneDnn, PixelEpilogue epilogue, const void* epilogueCtx);

// dW [3, 3, ci, co] of that conv from x [n, h, w, ci] and dy [n, h, w, co]: the tap products summed over the
// tiles. Threads sum contiguous runs of blocks, added in thread order, so the bits depend on the thread count
// (as oneDNN's weight gradients do) and on nothing else.
void winograd3x3FilterGradient(const float* x, const float* dy, float* dW, int64_t n, int64_t h, int64_t w, int64_t ci, int64_t co,
                               int threads, bool oneDnn);

// Convolutions winograd3x3 and winograd3x3FilterGradient have computed since the addon loaded (tests check that a shape took this path).
int64_t winogradCalls();

}  // namespace irlens
