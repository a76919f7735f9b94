// The fast path of lstmvision.nn.RNN / LSTM / GRU (implementation="fast"): one layer in one
// direction, forward and backward through time, in C++ (built at first use by
// lstmvision.nn.recurrent_fast with torch.utils.cpp_extension).
//
// Per step: one matrix product for the pre-activations x_t W_ih^T + b + h_{t-1} W_hh^T
// (step_product.h, the weights packed once per sequence; the GRU's input and recurrent parts
// apart) and one loop over the step's elements for all gate equations, vectorised (`omp simd`;
// GCC does not vectorise these loops on its own) with a polynomial exp (fast_exp). The backward
// pass is the same: one loop for the derivative equations of a step, one product for
// dL/dh_{t-1}; the weight, bias and input gradients are added up in blocks of steps
// (Gradients), one product each per block. The large buffers come from buffer_cache.h; a
// forward that keeps nothing for a backward (keep = false) overwrites one step's slot.
//
// With several threads, each runs all the steps of its own chunk of the batch's rows
// (over_time): the sequences are independent, and one step's small product split between
// threads costs more than it saves.
//
// Packed batches (decreasing lengths): step t updates rows [0, batch_sizes[t]); the other rows
// keep their state. Buffers whose padding rows are never written are zero-filled by the caller
// (via `padded`).
//
// Equations and gate order are torch's (lstmvision/nn/cells.py writes them out):
//   LSTM  i, f, g, o:  c' = f c + i g,  h' = o tanh(c')
//   GRU   r, z, n:     n = tanh(x_n + r (W_hn h + b_hn)),  h' = (1 - z) n + z h
//   RNN               h' = tanh or relu(x W_ih^T + b_ih + h W_hh^T + b_hh)

#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "buffer_cache.h"
#include "step_product.h"
#include "winograd.h"

namespace {

using step_product::StepWeight;

using at::Tensor;

// exp(x) for float by Cephes' range reduction and polynomial (relative error ~2e-7), in plain
// arithmetic so that loops calling it vectorise (std::exp would be one scalar call per element;
// std::floor vectorises under -fno-trapping-math).
inline float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  // (fmin/fmax would not vectorise)
  const float n = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = p * r * r + r + 1.0f;
  const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return y * scale;
}

inline double fast_exp(double x) { return std::exp(x); }

template <typename T>
inline T sigmoid(T x) {
  return T(1) / (T(1) + fast_exp(-x));
}

// tanh(x) = 2 sigmoid(2x) - 1 (as the equations path computes it)
template <typename T>
inline T tanh_(T x) {
  return T(2) * sigmoid(T(2) * x) - T(1);
}

// Rows per parallel chunk: enough elements that a thread's share outweighs waking it.
inline int64_t grain(int64_t row_elements) {
  return std::max<int64_t>(1, 16384 / std::max<int64_t>(row_elements, 1));
}

// The sequences of a batch are independent: each thread runs all the steps of its own chunk of
// rows (its products single-threaded), rather than every step being split between threads,
// which for small batches costs more in waking threads than it saves. Calls
// body(t, r0, rows) for every step in visiting order (backward: the reverse), rows being the
// chunk's live rows at step t (packed batches are sorted by decreasing length). Chunks of 2 rows
// or more: from 2 rows on a thread's products run at 75-114 GFLOP/s (2-core AMD EPYC; one row
// alone at 40-50, its weights read for one row), so 4 to 8 sequences are faster on 2 threads
// than on one (torch's LSTM was 1.15-1.4x faster there while they were not split).
constexpr int64_t kBatchGrain = 2;

template <typename F>
void over_time(int64_t T, int64_t B, const std::vector<int64_t>& batch_sizes, bool reverse,
               bool backward, const F& body, int64_t i_begin = 0, int64_t i_end = -1) {
  // A worker thread has its own modes: under the caller's torch.inference_mode the buffers are
  // inference tensors, which only a thread in inference mode may write into.
  const bool inference = c10::InferenceMode::is_enabled();
  if (i_end < 0) {
    i_end = T;
  }
  at::parallel_for(0, B, kBatchGrain, [&](int64_t r0, int64_t r1) {
    c10::InferenceMode inference_mode(inference);
    at::NoGradGuard no_grad;  // no graph of the weights
    for (int64_t i = i_begin; i < i_end; ++i) {
      const int64_t k = backward ? T - 1 - i : i;
      const int64_t t = reverse ? T - 1 - k : k;
      const int64_t rows = std::min(batch_sizes[t], r1) - r0;
      if (rows > 0) {
        body(t, r0, rows);
      }
    }
  });
}

// Step t's data in a contiguous (T, B, X) buffer.
template <typename T>
inline T* at_step(const Tensor& buffer, int64_t t) {
  return buffer.data_ptr<T>() + t * buffer.stride(0);
}

// The weights of a step's pre-activations, x_t W_ih^T + bias + h_{t-1} W_hh^T (given w_hh) or
// a W^T + bias for one weight (the GRU's input part, and its recurrent part), packed for
// step_product; bias may be absent.
template <typename T>
StepWeight<T> step_weight(const Tensor& w_ih, const c10::optional<Tensor>& bias,
                           const Tensor* w_hh = nullptr) {
  const int64_t N = w_ih.size(0), I = w_ih.size(1);
  const T* b = bias.has_value() && bias->defined() ? bias->data_ptr<T>() : nullptr;
  if (w_hh == nullptr) {
    return StepWeight<T>(w_ih.data_ptr<T>(), 1, I, I, N, b);
  }
  const int64_t H = w_hh->size(1);
  return StepWeight<T>(w_ih.data_ptr<T>(), 1, I, I, w_hh->data_ptr<T>(), 1, H, H, N, b);
}

// W_hh itself (G*H x H) packed for step_product: dL/dh_{t-1} = dL/d(pre-activations) W_hh.
template <typename T>
StepWeight<T> backward_weight(const Tensor& w_hh) {
  const int64_t GH = w_hh.size(0), H = w_hh.size(1);
  return StepWeight<T>(w_hh.data_ptr<T>(), H, 1, GH, H);
}

// Steps a forward keeps for the backward: all T when training (keep), else one step's slot
// that each step overwrites (a call that builds no graph); step t's slot in them.
inline int64_t kept_steps(bool keep, int64_t T) { return keep ? T : 1; }
inline int64_t slot(bool keep, int64_t t) { return keep ? t : 0; }

// A buffer of the size of a sequence or a block of steps, reused from an earlier call where
// one is free (buffer_cache.h); zeroed: where padding rows are never written.
inline Tensor buffer(at::IntArrayRef shape, const at::TensorOptions& options, bool zeroed) {
  buffer_cache::Cache& cache = buffer_cache::Cache::instance();
  return zeroed ? cache.zeros(shape, options) : cache.empty(shape, options);
}

// The backward through time in blocks of steps. Each step's dL/d(pre-activations) goes to its
// slot in a block buffer (n, B, G*H) of about 1024 rows (2 MB for an LSTM of 128 units), not to a
// (T, B, G*H) buffer: after each block its weight, bias and input gradients are added in one
// product each, while the block is still in cache. A whole buffer would be tens of MB on a long
// sequence, written once and read four times, each 4 KB page faulted in at first touch.
struct Gradients {
  Tensor x, w_ih, h_prev;  // inputs (T, B, I), (G*H, I), h_{t-1} of every step (T, B, H)
  bool need_dx, has_bias, separate_h;  // separate_h: dL/dh_part differs from dL/dx_part (GRU)
  Tensor d_x, d_w_ih_t, d_w_hh, d_b_ih, d_b_hh;  // d_w_ih_t: (I, G*H), transposed at the end
  Tensor block_x, block_h;  // (steps, B, G*H); block_h is block_x unless separate_h
  int64_t steps = 0;

  Gradients(Tensor x_, Tensor w_ih_, Tensor w_hh, Tensor h_prev_, bool need_dx_, bool has_bias_,
            bool separate_h_)
      : x(x_), w_ih(w_ih_), h_prev(h_prev_), need_dx(need_dx_), has_bias(has_bias_),
        separate_h(separate_h_) {
    const int64_t T = x.size(0), B = x.size(1), GH = w_hh.size(0);
    steps = std::min<int64_t>(T, std::max<int64_t>(1, 1024 / B));
    block_x = buffer({steps, B, GH}, h_prev.options(), false);
    block_h = separate_h ? buffer({steps, B, GH}, h_prev.options(), false) : block_x;
    d_w_ih_t = at::zeros({x.size(2), GH}, h_prev.options());
    d_w_hh = at::zeros_like(w_hh);
    if (has_bias) {
      d_b_ih = at::zeros({GH}, h_prev.options());
      d_b_hh = separate_h ? at::zeros({GH}, h_prev.options()) : d_b_ih;
    }
    if (need_dx) {
      d_x = buffer(x.sizes(), x.options(), false);
    }
  }

  // Blocks in the backward's visiting order: calls body(i_begin, i_end, t_lo), where the steps
  // visited are times [t_lo, t_lo + i_end - i_begin) and step t's slot is t - t_lo; then adds
  // the block's gradients. Rows past a sequence's end stay zero (padded: blocks zeroed first).
  template <typename F>
  void over_blocks(int64_t T, bool reverse, bool padded, const F& body) {
    const int64_t B = x.size(1), GH = block_x.size(2);
    for (int64_t i0 = 0; i0 < T; i0 += steps) {
      const int64_t i1 = std::min(T, i0 + steps), n = i1 - i0;
      const int64_t t_lo = reverse ? i0 : T - i1;
      if (padded) {
        block_x.zero_();
        if (separate_h) {
          block_h.zero_();
        }
      }
      body(i0, i1, t_lo);
      at::NoGradGuard no_grad;
      Tensor bx = block_x.narrow(0, 0, n).view({n * B, GH});
      Tensor bh = block_h.narrow(0, 0, n).view({n * B, GH});
      Tensor xs = x.narrow(0, t_lo, n).view({n * B, x.size(2)});
      d_w_hh.addmm_(bh.t(), h_prev.narrow(0, t_lo, n).view({n * B, h_prev.size(2)}));
      d_w_ih_t.addmm_(xs.t(), bx);  // (I, nB) @ (nB, G*H): MKL's faster operand order
      if (has_bias) {
        d_b_ih.add_(bx.sum(0));
        if (separate_h) {
          d_b_hh.add_(bh.sum(0));
        }
      }
      if (need_dx) {
        Tensor dxs = d_x.narrow(0, t_lo, n).view({n * B, x.size(2)});
        at::mm_out(dxs, bx, w_ih);
      }
    }
  }

  // over_time's backward visit, block by block: body(t, slot, r0, rows), slot being step t's
  // index in the block buffers.
  template <typename F>
  void backward_steps(int64_t T, const std::vector<int64_t>& batch_sizes, bool reverse,
                      bool padded, const F& body) {
    over_blocks(T, reverse, padded, [&](int64_t i0, int64_t i1, int64_t t_lo) {
      over_time(
          T, x.size(1), batch_sizes, reverse, true,
          [&](int64_t t, int64_t r0, int64_t rows) { body(t, t - t_lo, r0, rows); }, i0, i1);
    });
  }

  // d_x (or undefined), d_w_ih, d_w_hh, d_b_ih, d_b_hh (undefined without bias)
  std::vector<Tensor> result() const {
    return {d_x, d_w_ih_t.t().contiguous(), d_w_hh, d_b_ih, d_b_hh};
  }
};

// ---------------------------------------------------------------------------------------------
// LSTM
// ---------------------------------------------------------------------------------------------

// One row of LSTM gates: g holds 4 blocks of n pre-activations (i, f, g, o), replaced by their
// activations; c = f c_prev + i g, tanh_c = tanh(c), h = o tanh_c. A row is one sequence's
// units (n = H) in a layer, or one image's channels x positions (n = H * space) in a ConvLSTM.
template <typename T>
inline void lstm_gates_row(T* __restrict__ g, const T* __restrict__ c_prev, T* __restrict__ c,
                           T* __restrict__ tanh_c, T* __restrict__ h, int64_t n) {
  T* __restrict__ gi = g;
  T* __restrict__ gf = g + n;
  T* __restrict__ gg = g + 2 * n;
  T* __restrict__ go = g + 3 * n;
  _Pragma("omp simd")
  for (int64_t j = 0; j < n; ++j) {
    const T i = sigmoid(gi[j]), f = sigmoid(gf[j]), gc = tanh_(gg[j]), o = sigmoid(go[j]);
    const T cn = f * c_prev[j] + i * gc;
    const T tc = tanh_(cn);
    gi[j] = i;
    gf[j] = f;
    gg[j] = gc;
    go[j] = o;
    c[j] = cn;
    tanh_c[j] = tc;
    h[j] = o * tc;
  }
}

// Its derivatives: from dL/dh_t (dh) and dL/dC_t (dc, replaced by dL/dC_{t-1}) to dL/d(gate
// pre-activations) (d_g, 4 blocks of n).
template <typename T>
inline void lstm_gates_row_backward(const T* __restrict__ g, const T* __restrict__ c_prev,
                                    const T* __restrict__ tanh_c, const T* __restrict__ dh, T* dc,
                                    T* __restrict__ d_g, int64_t n) {
  const T* __restrict__ gi = g;
  const T* __restrict__ gf = g + n;
  const T* __restrict__ gg = g + 2 * n;
  const T* __restrict__ go = g + 3 * n;
  T* __restrict__ di = d_g;
  T* __restrict__ df = d_g + n;
  T* __restrict__ dg = d_g + 2 * n;
  T* __restrict__ d_o = d_g + 3 * n;
  _Pragma("omp simd")
  for (int64_t j = 0; j < n; ++j) {
    const T i = gi[j], f = gf[j], gc = gg[j], o = go[j], tc = tanh_c[j], d_h = dh[j];
    const T d_c = dc[j] + d_h * o * (T(1) - tc * tc);  // dL/dC_t, total
    d_o[j] = d_h * tc * o * (T(1) - o);
    di[j] = d_c * gc * i * (T(1) - i);
    df[j] = d_c * c_prev[j] * f * (T(1) - f);
    dg[j] = d_c * i * (T(1) - gc * gc);
    dc[j] = d_c * f;
  }
}

// x: (T, B, I); bias: b_ih + b_hh (4H) or absent. Returns output (T, B, H), h_n, c_n (B, H),
// and for the backward (keep; else one step's worth) the gates' activations i, f, g, o
// (T, B, 4H), c_prev, tanh(c) and h_prev (T, B, H).
std::vector<Tensor> lstm_forward(Tensor x, Tensor w_ih, c10::optional<Tensor> bias, Tensor h0,
                                 Tensor c0, Tensor w_hh, std::vector<int64_t> batch_sizes,
                                 bool reverse, bool padded, bool keep) {
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = h0.size(1);
  const int64_t S = kept_steps(keep, T);
  Tensor gates = buffer({S, B, 4 * H}, x.options(), padded);
  auto opts = h0.options();
  auto make = [&](std::vector<int64_t> shape) { return buffer(shape, opts, padded); };
  Tensor output = make({T, B, H}), c_prev = make({S, B, H}), tanh_c = make({S, B, H}),
         h_prev = make({S, B, H});
  Tensor h = h0.clone(), c = c0.clone();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lstm_forward", [&] {
    const StepWeight<scalar_t> w = step_weight<scalar_t>(w_ih, bias, &w_hh);
    over_time(T, B, batch_sizes, reverse, false, [&](int64_t t, int64_t r0, int64_t rows) {
      const int64_t k = slot(keep, t);
      scalar_t* G = at_step<scalar_t>(gates, k);
      scalar_t* hs = h.data_ptr<scalar_t>();
      // x_t W_ih^T + b + h_{t-1} W_hh^T
      w.times(at_step<scalar_t>(x, t) + r0 * I, I, hs + r0 * H, H, rows, G + r0 * 4 * H, 4 * H,
              false);
      scalar_t* cs = c.data_ptr<scalar_t>();
      scalar_t* out = at_step<scalar_t>(output, t);
      scalar_t* cp = at_step<scalar_t>(c_prev, k);
      scalar_t* tc = at_step<scalar_t>(tanh_c, k);
      scalar_t* hp = at_step<scalar_t>(h_prev, k);
      {
        const int64_t begin = r0, end = r0 + rows;
        const size_t bytes = (end - begin) * H * sizeof(scalar_t);
        std::memcpy(cp + begin * H, cs + begin * H, bytes);  // C_{t-1}, h_{t-1} for the backward
        if (keep) {
          std::memcpy(hp + begin * H, hs + begin * H, bytes);
        }
        for (int64_t b = begin; b < end; ++b) {
          lstm_gates_row(G + b * 4 * H, cp + b * H, cs + b * H, tc + b * H, hs + b * H, H);
        }
        std::memcpy(out + begin * H, hs + begin * H, bytes);
      }
    });
  });
  return {output, h, c, gates, c_prev, tanh_c, h_prev};
}

// Returns the gradients of x, W_ih, W_hh, b (= b_ih = b_hh: they enter as a sum), h_0, c_0.
std::vector<Tensor> lstm_backward(Tensor d_output, Tensor d_hn, Tensor d_cn, Tensor gates,
                                  Tensor c_prev, Tensor tanh_c, Tensor h_prev, Tensor x,
                                  Tensor w_ih, Tensor w_hh, bool need_dx, bool has_bias,
                                  std::vector<int64_t> batch_sizes, bool reverse, bool padded) {
  const int64_t T = gates.size(0), B = gates.size(1), H = w_hh.size(1);
  Gradients grads(x, w_ih, w_hh, h_prev, need_dx, has_bias, false);
  Tensor dh = d_hn.clone(), dc = d_cn.clone();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_backward", [&] {
    const StepWeight<scalar_t> w = backward_weight<scalar_t>(w_hh);
    grads.backward_steps(T, batch_sizes, reverse, padded,
                         [&](int64_t t, int64_t slot, int64_t r0, int64_t rows) {
      const scalar_t* G = at_step<scalar_t>(gates, t);
      const scalar_t* dout = at_step<scalar_t>(d_output, t);
      const scalar_t* cp = at_step<scalar_t>(c_prev, t);
      const scalar_t* tc = at_step<scalar_t>(tanh_c, t);
      scalar_t* dG = at_step<scalar_t>(grads.block_x, slot);
      scalar_t* dhs = dh.data_ptr<scalar_t>();
      scalar_t* dcs = dc.data_ptr<scalar_t>();
      {
        const int64_t begin = r0, end = r0 + rows;
        scalar_t* __restrict__ dh_part = dhs + begin * H;
        const scalar_t* __restrict__ dout_part = dout + begin * H;
        _Pragma("omp simd")
        for (int64_t j = 0; j < (end - begin) * H; ++j) {
          dh_part[j] += dout_part[j];  // dL/dh_t: through the next step and the output
        }
        for (int64_t b = begin; b < end; ++b) {
          lstm_gates_row_backward(G + b * 4 * H, cp + b * H, tc + b * H, dhs + b * H,
                                  dcs + b * H, dG + b * 4 * H, H);
        }
      }
      w.times(dG + r0 * 4 * H, 4 * H, rows, dhs + r0 * H, H, false);  // dL/dh_{t-1}
    });
  });
  std::vector<Tensor> out = grads.result();
  out.push_back(dh);
  out.push_back(dc);
  return out;
}

// The gates of a ConvLSTM step (lstmvision.nn.convlstm_fast): pre-activations gates (B, 4H,
// *space) (replaced by the activations) and C_{t-1} (B, H, *space) -> h_t, C_t, tanh(C_t).
std::vector<Tensor> lstm_gates_forward(Tensor gates, Tensor c_prev) {
  const int64_t B = gates.size(0), n = c_prev.numel() / B;
  Tensor c = at::empty_like(c_prev), tanh_c = at::empty_like(c_prev), h = at::empty_like(c_prev);
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_gates_forward", [&] {
    scalar_t* G = gates.data_ptr<scalar_t>();
    const scalar_t* cp = c_prev.data_ptr<scalar_t>();
    scalar_t *cs = c.data_ptr<scalar_t>(), *tc = tanh_c.data_ptr<scalar_t>(),
             *hs = h.data_ptr<scalar_t>();
    at::parallel_for(0, B, grain(4 * n), [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        lstm_gates_row(G + b * 4 * n, cp + b * n, cs + b * n, tc + b * n, hs + b * n, n);
      }
    });
  });
  return {h, c, tanh_c};
}

// Its backward: dL/dh_t, dL/dC_t -> dL/d(pre-activations) (B, 4H, *space), dL/dC_{t-1}.
std::vector<Tensor> lstm_gates_backward(Tensor dh, Tensor dc, Tensor gates, Tensor c_prev,
                                        Tensor tanh_c) {
  const int64_t B = gates.size(0), n = c_prev.numel() / B;
  Tensor d_gates = at::empty_like(gates);
  Tensor d_c = dc.clone();
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "lstm_gates_backward", [&] {
    const scalar_t *G = gates.data_ptr<scalar_t>(), *cp = c_prev.data_ptr<scalar_t>(),
                   *tc = tanh_c.data_ptr<scalar_t>(), *dhs = dh.data_ptr<scalar_t>();
    scalar_t *dcs = d_c.data_ptr<scalar_t>(), *dG = d_gates.data_ptr<scalar_t>();
    at::parallel_for(0, B, grain(4 * n), [&](int64_t begin, int64_t end) {
      for (int64_t b = begin; b < end; ++b) {
        lstm_gates_row_backward(G + b * 4 * n, cp + b * n, tc + b * n, dhs + b * n, dcs + b * n,
                                dG + b * 4 * n, n);
      }
    });
  });
  return {d_gates, d_c};
}

// ---------------------------------------------------------------------------------------------
// GRU
// ---------------------------------------------------------------------------------------------

// x: (T, B, I); b_ih, b_hh (3H) may be absent. Returns output, h_n, and for the backward the
// gates' activations r, z, n (T, B, 3H), h_part_n = W_hn h + b_hn (T, B, H) and h_prev. Each
// step's two products start from their biases: x_t W_ih^T + b_ih, h_{t-1} W_hh^T + b_hh.
std::vector<Tensor> gru_forward(Tensor x, Tensor w_ih, c10::optional<Tensor> b_ih, Tensor h0,
                                Tensor w_hh, c10::optional<Tensor> b_hh,
                                std::vector<int64_t> batch_sizes, bool reverse, bool padded,
                                bool keep) {
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = h0.size(1);
  const int64_t S = kept_steps(keep, T);
  Tensor gates = buffer({S, B, 3 * H}, x.options(), padded);
  auto opts = h0.options();
  auto make = [&](std::vector<int64_t> shape) { return buffer(shape, opts, padded); };
  Tensor output = make({T, B, H}), hn_part = make({S, B, H}), h_prev = make({S, B, H});
  Tensor h = h0.clone();
  Tensor hp_step = at::empty({B, 3 * H}, opts);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "gru_forward", [&] {
    const StepWeight<scalar_t> w_x = step_weight<scalar_t>(w_ih, b_ih);
    const StepWeight<scalar_t> w_t = step_weight<scalar_t>(w_hh, b_hh);  // W_hh^T, b_hh
    over_time(T, B, batch_sizes, reverse, false, [&](int64_t t, int64_t r0, int64_t rows) {
      const int64_t k = slot(keep, t);
      scalar_t* G = at_step<scalar_t>(gates, k);
      scalar_t* HP = hp_step.data_ptr<scalar_t>();
      scalar_t* hs = h.data_ptr<scalar_t>();
      // x_t W_ih^T + b_ih and h_{t-1} W_hh^T + b_hh
      w_x.times(at_step<scalar_t>(x, t) + r0 * I, I, rows, G + r0 * 3 * H, 3 * H, false);
      w_t.times(hs + r0 * H, H, rows, HP + r0 * 3 * H, 3 * H, false);
      scalar_t* out = at_step<scalar_t>(output, t);
      scalar_t* hnp = at_step<scalar_t>(hn_part, k);
      scalar_t* hp = at_step<scalar_t>(h_prev, k);
      {
        const int64_t begin = r0, end = r0 + rows;
        for (int64_t b = begin; b < end; ++b) {
          scalar_t* __restrict__ gr = G + b * 3 * H;
          scalar_t* __restrict__ gz = gr + H;
          scalar_t* __restrict__ gn = gr + 2 * H;
          const scalar_t* __restrict__ hr = HP + b * 3 * H;
          const scalar_t* __restrict__ hz = hr + H;
          const scalar_t* __restrict__ hnn = hr + 2 * H;
          scalar_t* __restrict__ hb = hs + b * H;
          scalar_t* __restrict__ ob = out + b * H;
          scalar_t* __restrict__ hnpb = hnp + b * H;
          scalar_t* __restrict__ hpb = hp + b * H;
          _Pragma("omp simd")
          for (int64_t j = 0; j < H; ++j) {
            const scalar_t r = sigmoid(gr[j] + hr[j]), z = sigmoid(gz[j] + hz[j]);
            const scalar_t h_n = hnn[j];
            const scalar_t n = tanh_(gn[j] + r * h_n);
            const scalar_t hn = (scalar_t(1) - z) * n + z * hb[j];
            gr[j] = r;
            gz[j] = z;
            gn[j] = n;
            hnpb[j] = h_n;
            hpb[j] = hb[j];
            hb[j] = hn;
            ob[j] = hn;
          }
        }
      }
    });
  });
  return {output, h, gates, hn_part, h_prev};
}

// Returns the gradients of x, W_ih, W_hh, b_ih, b_hh, h_0.
std::vector<Tensor> gru_backward(Tensor d_output, Tensor d_hn, Tensor gates, Tensor hn_part,
                                 Tensor h_prev, Tensor x, Tensor w_ih, Tensor w_hh, bool need_dx,
                                 bool has_bias, std::vector<int64_t> batch_sizes, bool reverse,
                                 bool padded) {
  const int64_t T = gates.size(0), B = gates.size(1), H = w_hh.size(1);
  Gradients grads(x, w_ih, w_hh, h_prev, need_dx, has_bias, true);
  Tensor dh = d_hn.clone();
  // dL/dh_{t-1} = dL/dh_part W_hh (in dh) + the direct path dL/dh_t z (in direct); kept apart
  // so that the product writes dh without first copying direct into it
  Tensor direct = at::zeros({B, H}, dh.options());
  AT_DISPATCH_FLOATING_TYPES(gates.scalar_type(), "gru_backward", [&] {
    const StepWeight<scalar_t> w = backward_weight<scalar_t>(w_hh);
    grads.backward_steps(T, batch_sizes, reverse, padded,
                         [&](int64_t t, int64_t slot, int64_t r0, int64_t rows) {
      const scalar_t* G = at_step<scalar_t>(gates, t);
      const scalar_t* dout = at_step<scalar_t>(d_output, t);
      const scalar_t* hnp = at_step<scalar_t>(hn_part, t);
      const scalar_t* hp = at_step<scalar_t>(h_prev, t);
      scalar_t* dX = at_step<scalar_t>(grads.block_x, slot);
      scalar_t* dHP = at_step<scalar_t>(grads.block_h, slot);
      scalar_t* dhs = dh.data_ptr<scalar_t>();
      scalar_t* dir = direct.data_ptr<scalar_t>();
      {
        const int64_t begin = r0, end = r0 + rows;
        for (int64_t b = begin; b < end; ++b) {
          const scalar_t* __restrict__ gr = G + b * 3 * H;
          const scalar_t* __restrict__ gz = gr + H;
          const scalar_t* __restrict__ gn = gr + 2 * H;
          const scalar_t* __restrict__ db = dout + b * H;
          const scalar_t* __restrict__ hnpb = hnp + b * H;
          const scalar_t* __restrict__ hpb = hp + b * H;
          const scalar_t* __restrict__ dhb = dhs + b * H;
          scalar_t* __restrict__ dxr = dX + b * 3 * H;
          scalar_t* __restrict__ dxz = dxr + H;
          scalar_t* __restrict__ dxn = dxr + 2 * H;
          scalar_t* __restrict__ dhr = dHP + b * 3 * H;
          scalar_t* __restrict__ dhz = dhr + H;
          scalar_t* __restrict__ dhn = dhr + 2 * H;
          scalar_t* __restrict__ dirb = dir + b * H;
          _Pragma("omp simd")
          for (int64_t j = 0; j < H; ++j) {
            const scalar_t r = gr[j], z = gz[j], n = gn[j];
            const scalar_t d_h = dhb[j] + dirb[j] + db[j];
            const scalar_t d_z = d_h * (hpb[j] - n) * z * (scalar_t(1) - z);
            const scalar_t d_n = d_h * (scalar_t(1) - z) * (scalar_t(1) - n * n);
            const scalar_t d_r = d_n * hnpb[j] * r * (scalar_t(1) - r);
            dxr[j] = d_r;
            dxz[j] = d_z;
            dxn[j] = d_n;
            dhr[j] = d_r;
            dhz[j] = d_z;
            dhn[j] = d_n * r;
            dirb[j] = d_h * z;
          }
        }
      }
      w.times(dHP + r0 * 3 * H, 3 * H, rows, dhs + r0 * H, H, false);
    });
  });
  dh.add_(direct);
  std::vector<Tensor> out = grads.result();
  out.push_back(dh);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Elman RNN
// ---------------------------------------------------------------------------------------------

// x: (T, B, I); bias: b_ih + b_hh (H) or absent. Returns output, h_n, h_prev (keep; else
// empty).
std::vector<Tensor> rnn_forward(Tensor x, Tensor w_ih, c10::optional<Tensor> bias, Tensor h0,
                                Tensor w_hh, bool relu, std::vector<int64_t> batch_sizes,
                                bool reverse, bool padded, bool keep) {
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), H = h0.size(1);
  Tensor pre = at::empty({B, H}, h0.options());  // a step's pre-activations
  auto opts = h0.options();
  Tensor output = buffer({T, B, H}, opts, padded);
  Tensor h_prev = buffer({keep ? T : 0, B, H}, opts, padded);
  Tensor h = h0.clone();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "rnn_forward", [&] {
    const StepWeight<scalar_t> w = step_weight<scalar_t>(w_ih, bias, &w_hh);
    over_time(T, B, batch_sizes, reverse, false, [&](int64_t t, int64_t r0, int64_t rows) {
      scalar_t* P = pre.data_ptr<scalar_t>();
      scalar_t* hs = h.data_ptr<scalar_t>();
      if (keep) {
        std::memcpy(at_step<scalar_t>(h_prev, t) + r0 * H, hs + r0 * H,
                    rows * H * sizeof(scalar_t));  // h_{t-1} for the backward
      }
      // x_t W_ih^T + b + h_{t-1} W_hh^T
      w.times(at_step<scalar_t>(x, t) + r0 * I, I, hs + r0 * H, H, rows, P + r0 * H, H, false);
      scalar_t* out = at_step<scalar_t>(output, t);
      {
        const int64_t begin = r0, end = r0 + rows;
        for (int64_t b = begin; b < end; ++b) {
          const scalar_t* __restrict__ pb = P + b * H;
          scalar_t* __restrict__ hb = hs + b * H;
          scalar_t* __restrict__ ob = out + b * H;
          _Pragma("omp simd")
          for (int64_t j = 0; j < H; ++j) {
            const scalar_t y = relu ? (pb[j] > scalar_t(0) ? pb[j] : scalar_t(0)) : tanh_(pb[j]);
            hb[j] = y;
            ob[j] = y;
          }
        }
      }
    });
  });
  return {output, h, h_prev};
}

// Returns the gradients of x, W_ih, W_hh, b (= b_ih = b_hh), h_0.
std::vector<Tensor> rnn_backward(Tensor d_output, Tensor d_hn, Tensor output, Tensor h_prev,
                                 Tensor x, Tensor w_ih, Tensor w_hh, bool need_dx, bool has_bias,
                                 bool relu, std::vector<int64_t> batch_sizes, bool reverse,
                                 bool padded) {
  const int64_t T = output.size(0), B = output.size(1), H = w_hh.size(1);
  Gradients grads(x, w_ih, w_hh, h_prev, need_dx, has_bias, false);
  Tensor dh = d_hn.clone();
  AT_DISPATCH_FLOATING_TYPES(output.scalar_type(), "rnn_backward", [&] {
    const StepWeight<scalar_t> w = backward_weight<scalar_t>(w_hh);
    grads.backward_steps(T, batch_sizes, reverse, padded,
                         [&](int64_t t, int64_t slot, int64_t r0, int64_t rows) {
      const scalar_t* Y = at_step<scalar_t>(output, t);
      const scalar_t* dout = at_step<scalar_t>(d_output, t);
      scalar_t* dP = at_step<scalar_t>(grads.block_x, slot);
      scalar_t* dhs = dh.data_ptr<scalar_t>();
      {
        const int64_t begin = r0, end = r0 + rows;
        for (int64_t b = begin; b < end; ++b) {
          const scalar_t* __restrict__ yb = Y + b * H;
          const scalar_t* __restrict__ db = dout + b * H;
          const scalar_t* __restrict__ dhb = dhs + b * H;
          scalar_t* __restrict__ dpb = dP + b * H;
          _Pragma("omp simd")
          for (int64_t j = 0; j < H; ++j) {
            const scalar_t d_h = dhb[j] + db[j], y = yb[j];
            dpb[j] = relu ? (y > scalar_t(0) ? d_h : scalar_t(0)) : d_h * (scalar_t(1) - y * y);
          }
        }
      }
      w.times(dP + r0 * H, H, rows, dhs + r0 * H, H, false);
    });
  });
  std::vector<Tensor> out = grads.result();
  out.push_back(dh);
  return out;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("lstm_forward", &lstm_forward);
  m.def("lstm_backward", &lstm_backward);
  m.def("lstm_gates_forward", &lstm_gates_forward);
  m.def("lstm_gates_backward", &lstm_gates_backward);
  m.def("gru_forward", &gru_forward);
  m.def("gru_backward", &gru_backward);
  m.def("rnn_forward", &rnn_forward);
  m.def("rnn_backward", &rnn_backward);
  m.def("winograd_conv", &winograd::conv);
  m.def("winograd_weight_grad", &winograd::weight_grad);
  m.def("buffer_cache_stats", [] { return buffer_cache::Cache::instance().stats(); });
  m.def("buffer_cache_clear", [] { buffer_cache::Cache::instance().clear(); });
  m.def("buffer_cache_limit_mb",
        [](int64_t mb) { return buffer_cache::Cache::instance().set_limit_mb(mb); });
}
