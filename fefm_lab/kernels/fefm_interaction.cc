// Fused FEFM pair scores and their gradient, as TensorFlow CPU ops.
//
// For field embeddings v (B, n, k), pair matrices W (P, k, k) and pairs p = (i_p < j_p):
//
//   FefmScores:      r[b, p]   = v[b, i_p]^T W_p v[b, j_p]
//   FefmScoresGrad:  dv[b, i] += g[b, p] W_p v[b, j_p]      for the pairs with i_p = i
//                    dv[b, j] += g[b, p] W_p^T v[b, i_p]    for the pairs with j_p = j
//                    dW_p      = sum_b g[b, p] v[b, i_p] v[b, j_p]^T
//
// The TensorFlow-ops path gathers v_i and v_j into (P, B, k) tensors and keeps s_p = v_i W_p, three
// tensors of P*B*k floats (12M at k = 16) written and read again. Here the batch is cut into
// blocks of rows whose embeddings stay in L2; per pair, a block's s = v_i W_p is built a few rows
// at a time in registers and reduced against v_j at once. The backward pass recomputes s, and
// t = v_j W_p^T, rather than storing them (one load of W feeds both when W is symmetric, as
// FEFM's U + U^T is). dv is accumulated per block (each block owns its rows); dW per pair over
// all rows (each pair owns its matrix), so no thread shares an output and the sums' order does
// not depend on the thread count. dW reads v field by field and g by pair (one copy of each per
// call), so a pair's rows are contiguous runs rather than one cache line per row; the forward
// pass sums a tile's rows' lanes together (shuffles across the rows' vectors, the same tree of
// halves per row), not one row at a time.
//
// Vectorisation: GCC vector types of 64 bytes; k is padded to a whole number of them (zero
// columns add zeros). The loops are compiled three times (AVX-512, AVX2+FMA, baseline) and the
// widest the CPU has is chosen when the op is created, so one library serves any x86-64 CPU;
// elsewhere only the baseline is built. No -ffast-math: float additions run in a fixed order
// (the AVX variants fuse multiply-adds, so their last bits can differ from the baseline's).

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "tensorflow/core/framework/common_shape_fns.h"
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/util/work_sharder.h"

// The AVX-512 and AVX2 variants exist on x86-64 only (-DFEFM_BASELINE_ONLY checks the others'
// build on x86-64 too).
#if defined(__x86_64__) && !defined(FEFM_BASELINE_ONLY)
#define FEFM_X86_VARIANTS 1
#else
#define FEFM_X86_VARIANTS 0
#endif

// 64-byte vectors pass between functions only where the flatten entry points inline them.
#pragma GCC diagnostic ignored "-Wpsabi"

namespace fefm {

using int64 = std::int64_t;

constexpr int kVectorBytes = 64;

template <typename T, int Bytes = kVectorBytes>
struct VectorOf {
  typedef T type __attribute__((vector_size(Bytes)));
};

template <typename T>
using Vec = typename VectorOf<T>::type;

template <typename T>
constexpr int64 kLanes = kVectorBytes / sizeof(T);

template <typename T>
inline Vec<T> Load(const T* from) {
  Vec<T> value;
  std::memcpy(&value, from, sizeof(value));
  return value;
}

template <typename T>
inline void Store(T* to, Vec<T> value) {
  std::memcpy(to, &value, sizeof(value));
}

// A row's sum of lanes is a tree of halves: lane l plus lane l + lanes/2, then the same on the
// low half, down to one lane (4 vector adds for 16 floats, not 15 dependent ones). The rows of
// a tile are summed together, a step of the tree on two rows' vectors at once: `a` and `b` each
// hold runs of Width lanes (a row's partial sums each); the result holds a's runs, then b's, each
// half as wide, every lane the sum of a lane in the first half of its run and the lane Width / 2
// after it.
template <typename I, int64 Lanes>
struct RunMasks {
  I low[Lanes], high[Lanes];  // __builtin_shuffle's indices: < Lanes from a, else from b
};

template <typename I, int64 Lanes, int64 Width>
constexpr RunMasks<I, Lanes> HalvingMasks() {
  RunMasks<I, Lanes> masks{};
  const int64 half = Width / 2, runs = Lanes / Width;
  for (int64 lane = 0; lane < Lanes; ++lane) {
    const int64 run = lane / half;
    const int64 from = run < runs ? run * Width : Lanes + (run - runs) * Width;
    masks.low[lane] = static_cast<I>(from + lane % half);
    masks.high[lane] = static_cast<I>(from + half + lane % half);
  }
  return masks;
}

template <typename T, int64 Width>
inline Vec<T> HalveRuns(const Vec<T>& a, const Vec<T>& b) {
  using I = std::conditional_t<sizeof(T) == 4, int32_t, int64_t>;
  using Index = typename VectorOf<I>::type;
  static constexpr RunMasks<I, kLanes<T>> kMasks = HalvingMasks<I, kLanes<T>, Width>();
  Index low, high;
  std::memcpy(&low, kMasks.low, sizeof(low));
  std::memcpy(&high, kMasks.high, sizeof(high));
  return __builtin_shuffle(a, b, low) + __builtin_shuffle(a, b, high);
}

// The lane sums of dot[0..R) (R <= lanes, a power of two), each row's tree of halves as above,
// into lanes 0..R-1 of dot[0]; a self-paired step once the rows share one vector.
template <typename T, int64 Width, int Count, int R>
inline void HorizontalSums(Vec<T> (&dot)[R]) {
  static_assert(R <= kLanes<T> && (R & (R - 1)) == 0, "R must be a power of two <= lanes");
  if constexpr (Width > 1) {
    if constexpr (Count > 1) {
#pragma GCC unroll 8
      for (int q = 0; q < Count / 2; ++q) {
        dot[q] = HalveRuns<T, Width>(dot[2 * q], dot[2 * q + 1]);
      }
      HorizontalSums<T, Width / 2, Count / 2, R>(dot);
    } else {
      dot[0] = HalveRuns<T, Width>(dot[0], dot[0]);
      HorizontalSums<T, Width / 2, 1, R>(dot);
    }
  }
}

// Everything a kernel reads, in the padded layout: v (B, n, kp), W and W^T (P, k, kp).
template <typename T>
struct Problem {
  int64 batch, fields, k, kp, pairs;
  const int32_t* left;
  const int32_t* right;
  const T* v;
  const T* w;
  const T* w_transposed;  // backward only: W^T in the same layout (W itself when symmetric)
  const T* upstream;      // backward only: g = dL/dr, (B, P)
  const T* by_field;      // backward only: v field by field, (n, B, kp)
  const T* Row(int64 b, int64 field) const { return v + (b * fields + field) * kp; }
  const T* FieldRow(int64 b, int64 field) const { return by_field + (field * batch + b) * kp; }
};

// ---- forward: r[b, p] for the rows [b, b + R) of one pair ----
template <typename T, int R>
inline void ForwardTile(const Problem<T>& pr, int64 p, int64 b, T* scores) {
  const T* wp = pr.w + p * pr.k * pr.kp;
  const T* x[R];
  const T* y[R];
  for (int r = 0; r < R; ++r) {
    x[r] = pr.Row(b + r, pr.left[p]);
    y[r] = pr.Row(b + r, pr.right[p]);
  }
  Vec<T> dot[R] = {};
  for (int64 c = 0; c < pr.kp; c += kLanes<T>) {
    Vec<T> s[R] = {};  // s = v_i W_p, columns [c, c + lanes)
    for (int64 a = 0; a < pr.k; ++a) {
      const Vec<T> wa = Load(wp + a * pr.kp + c);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) s[r] += x[r][a] * wa;
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) dot[r] += s[r] * Load(y[r] + c);
  }
  HorizontalSums<T, kLanes<T>, R, R>(dot);
  for (int r = 0; r < R; ++r) scores[(b + r) * pr.pairs + p] = dot[0][r];
}

template <typename T, int R>
inline void ForwardRows(const Problem<T>& pr, int64 begin, int64 end, T* scores) {
  for (int64 p = 0; p < pr.pairs; ++p) {
    int64 b = begin;
    for (; b + R <= end; b += R) ForwardTile<T, R>(pr, p, b, scores);
    for (; b < end; ++b) ForwardTile<T, 1>(pr, p, b, scores);
  }
}

// ---- backward, embeddings: dv for the rows [b, b + R), one pair ----
// Symmetric: W_p = W_p^T (FEFM's U + U^T), so both products read the same W rows.
template <typename T, int R, bool Symmetric>
inline void EmbeddingGradientTile(const Problem<T>& pr, int64 p, int64 b, T* dv) {
  const int64 i = pr.left[p], j = pr.right[p];
  const T* wp = pr.w + p * pr.k * pr.kp;
  const T* wtp = pr.w_transposed + p * pr.k * pr.kp;
  const T* xi[R];
  const T* xj[R];
  T* di[R];
  T* dj[R];
  T g[R];
  for (int r = 0; r < R; ++r) {
    xi[r] = pr.Row(b + r, i);
    xj[r] = pr.Row(b + r, j);
    di[r] = dv + ((b + r) * pr.fields + i) * pr.kp;
    dj[r] = dv + ((b + r) * pr.fields + j) * pr.kp;
    g[r] = pr.upstream[(b + r) * pr.pairs + p];
  }
  for (int64 c = 0; c < pr.kp; c += kLanes<T>) {
    Vec<T> t[R] = {};  // t = v_j W_p^T: the gradient to v_i per unit g
    Vec<T> s[R] = {};  // s = v_i W_p: the gradient to v_j per unit g
    for (int64 a = 0; a < pr.k; ++a) {
      const Vec<T> wa = Load(wp + a * pr.kp + c);
      const Vec<T> wta = Symmetric ? wa : Load(wtp + a * pr.kp + c);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        t[r] += xj[r][a] * wta;
        s[r] += xi[r][a] * wa;
      }
    }
    for (int r = 0; r < R; ++r) {
      Store(di[r] + c, Load(di[r] + c) + g[r] * t[r]);
      Store(dj[r] + c, Load(dj[r] + c) + g[r] * s[r]);
    }
  }
}

template <typename T, int R, bool Symmetric>
inline void EmbeddingGradientPairs(const Problem<T>& pr, int64 begin, int64 end, T* dv) {
  for (int64 p = 0; p < pr.pairs; ++p) {
    int64 b = begin;
    for (; b + R <= end; b += R) EmbeddingGradientTile<T, R, Symmetric>(pr, p, b, dv);
    for (; b < end; ++b) EmbeddingGradientTile<T, 1, Symmetric>(pr, p, b, dv);
  }
}

template <typename T, int R>
inline void EmbeddingGradientRows(const Problem<T>& pr, int64 begin, int64 end, T* dv) {
  std::fill(dv + begin * pr.fields * pr.kp, dv + end * pr.fields * pr.kp, T(0));
  if (pr.w_transposed == pr.w) {
    EmbeddingGradientPairs<T, R, true>(pr, begin, end, dv);
  } else {
    EmbeddingGradientPairs<T, R, false>(pr, begin, end, dv);
  }
}

// ---- backward, pair matrices: dW_p rows [a, a + R) = sum_b (g v_i)[b, a..] v_j[b]^T ----
template <typename T, int R>
inline void MatrixGradientTile(const Problem<T>& pr, int64 p, int64 a, const T* gv, T* dwp) {
  const int64 j = pr.right[p];
  for (int64 c = 0; c < pr.kp; c += kLanes<T>) {
    Vec<T> acc[R] = {};
    for (int64 b = 0; b < pr.batch; ++b) {
      const Vec<T> y = Load(pr.FieldRow(b, j) + c);
      const T* x = gv + b * pr.kp + a;
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) acc[r] += x[r] * y;
    }
    for (int r = 0; r < R; ++r) Store(dwp + (a + r) * pr.kp + c, acc[r]);
  }
}

// `gv` is scratch of B * kp values: g[b, p] v[b, i_p] for the pair at hand; `gs` of
// (end - begin) * B values: g's columns for the pairs [begin, end), each one contiguous run
// (a column of (B, P) is one cache line per row).
template <typename T, int R>
inline void MatrixGradientPairs(const Problem<T>& pr, int64 begin, int64 end, T* gv, T* gs,
                                T* dw) {
  constexpr int64 kTile = 16;
  for (int64 b0 = 0; b0 < pr.batch; b0 += kTile) {
    for (int64 p0 = begin; p0 < end; p0 += kTile) {
      for (int64 p = p0; p < std::min(end, p0 + kTile); ++p) {
        for (int64 b = b0; b < std::min(pr.batch, b0 + kTile); ++b) {
          gs[(p - begin) * pr.batch + b] = pr.upstream[b * pr.pairs + p];
        }
      }
    }
  }
  for (int64 p = begin; p < end; ++p) {
    const T* g = gs + (p - begin) * pr.batch;
    for (int64 b = 0; b < pr.batch; ++b) {
      const T* x = pr.FieldRow(b, pr.left[p]);
      for (int64 c = 0; c < pr.kp; c += kLanes<T>) Store(gv + b * pr.kp + c, g[b] * Load(x + c));
    }
    T* dwp = dw + p * pr.k * pr.kp;
    int64 a = 0;
    for (; a + R <= pr.k; a += R) MatrixGradientTile<T, R>(pr, p, a, gv, dwp);
    for (; a < pr.k; ++a) MatrixGradientTile<T, 1>(pr, p, a, gv, dwp);
  }
}

// ---- the three instruction sets; rows per tile keep the accumulators in registers ----
template <typename T>
struct Variant {
  const char* name;
  void (*forward)(const Problem<T>&, int64, int64, T*);
  void (*embedding_gradient)(const Problem<T>&, int64, int64, T*);
  void (*matrix_gradient)(const Problem<T>&, int64, int64, T*, T*, T*);
};

#define FEFM_VARIANT(T, suffix, attributes, rows_forward, rows_dv, rows_dw)                   \
  attributes void Forward##suffix(const Problem<T>& pr, int64 b0, int64 b1, T* out) {        \
    ForwardRows<T, rows_forward>(pr, b0, b1, out);                                            \
  }                                                                                           \
  attributes void EmbeddingGradient##suffix(const Problem<T>& pr, int64 b0, int64 b1, T* dv) { \
    EmbeddingGradientRows<T, rows_dv>(pr, b0, b1, dv);                                        \
  }                                                                                           \
  attributes void MatrixGradient##suffix(const Problem<T>& pr, int64 p0, int64 p1, T* gv,     \
                                         T* gs, T* dw) {                                      \
    MatrixGradientPairs<T, rows_dw>(pr, p0, p1, gv, gs, dw);                                  \
  }

// flatten: every helper above is inlined into the entry point, so it is compiled for its target.
// A 64-byte vector is 1 register with AVX-512, 2 with AVX2, 4 with SSE2: the row counts keep
// the accumulators within the 32 / 16 / 16 vector registers.
#if FEFM_X86_VARIANTS
FEFM_VARIANT(float, Avx512F32, __attribute__((flatten, target("avx512f"))), 8, 8, 16)
FEFM_VARIANT(double, Avx512F64, __attribute__((flatten, target("avx512f"))), 8, 8, 16)
FEFM_VARIANT(float, Avx2F32, __attribute__((flatten, target("avx2,fma"))), 4, 2, 4)
FEFM_VARIANT(double, Avx2F64, __attribute__((flatten, target("avx2,fma"))), 4, 2, 4)
#endif
FEFM_VARIANT(float, BaselineF32, __attribute__((flatten)), 2, 1, 2)
FEFM_VARIANT(double, BaselineF64, __attribute__((flatten)), 2, 1, 2)

#define FEFM_VARIANT_TABLE(label, suffix) \
  { label, Forward##suffix, EmbeddingGradient##suffix, MatrixGradient##suffix }

template <typename T>
std::vector<Variant<T>> Variants();

template <>
std::vector<Variant<float>> Variants<float>() {
  return {
#if FEFM_X86_VARIANTS
      FEFM_VARIANT_TABLE("avx512f", Avx512F32),
      FEFM_VARIANT_TABLE("avx2", Avx2F32),
#endif
      FEFM_VARIANT_TABLE("baseline", BaselineF32),
  };
}

template <>
std::vector<Variant<double>> Variants<double>() {
  return {
#if FEFM_X86_VARIANTS
      FEFM_VARIANT_TABLE("avx512f", Avx512F64),
      FEFM_VARIANT_TABLE("avx2", Avx2F64),
#endif
      FEFM_VARIANT_TABLE("baseline", BaselineF64),
  };
}

template <typename... Args>
absl::Status Invalid(const Args&... parts) {
  return absl::InvalidArgumentError(absl::StrCat(parts...));
}

// Whether this CPU runs the variant's instructions.
inline bool Supported(const std::string& name) {
#if FEFM_X86_VARIANTS
  __builtin_cpu_init();
  if (name == "avx512f") return __builtin_cpu_supports("avx512f");
  if (name == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  return name == "baseline";
}

// The variant named by `isa` ("auto": the widest this CPU runs), or an error message.
template <typename T>
absl::Status ChooseVariant(const std::string& isa, Variant<T>* chosen) {
  for (const Variant<T>& variant : Variants<T>()) {
    if ((isa == "auto" || isa == variant.name) && Supported(variant.name)) {
      *chosen = variant;
      return absl::OkStatus();
    }
  }
  return Invalid("isa '", isa, "' is not built or not supported by this CPU");
}

// ---- op plumbing ----
using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;

inline int64 Padded(int64 k, int64 lanes) { return (k + lanes - 1) / lanes * lanes; }

// rows (count, k) -> (count, kp), zero columns after k.
template <typename T>
void PadRows(const T* from, int64 count, int64 k, int64 kp, T* to) {
  for (int64 row = 0; row < count; ++row) {
    std::copy(from + row * k, from + (row + 1) * k, to + row * kp);
    std::fill(to + row * kp + k, to + (row + 1) * kp, T(0));
  }
}

template <typename T>
void UnpadRows(const T* from, int64 count, int64 k, int64 kp, T* to) {
  for (int64 row = 0; row < count; ++row) {
    std::copy(from + row * kp, from + row * kp + k, to + row * k);
  }
}

// Whether every W_p equals its transpose exactly (U + U^T does, in floating point too).
template <typename T>
bool Symmetric(const T* w, int64 pairs, int64 k) {
  for (int64 p = 0; p < pairs; ++p) {
    const T* wp = w + p * k * k;
    for (int64 a = 0; a < k; ++a) {
      for (int64 c = a + 1; c < k; ++c) {
        if (wp[a * k + c] != wp[c * k + a]) return false;
      }
    }
  }
  return true;
}

// Batch rows per block: the block's v and dv (2 * rows * n * kp values) within ~512 KiB of L2.
template <typename T>
int64 BlockRows(int64 fields, int64 kp) {
  const int64 bytes_per_row = 2 * fields * kp * static_cast<int64>(sizeof(T));
  return std::max<int64>(8, std::min<int64>(128, (512 << 10) / bytes_per_row / 8 * 8));
}

inline absl::Status Temporary(OpKernelContext* context, tensorflow::DataType dtype, int64 size,
                              Tensor* tensor) {
  return context->allocate_temp(dtype, TensorShape({size}), tensor);
}

template <typename Fn>
void ParallelFor(OpKernelContext* context, int64 units, int64 cost_per_unit, Fn fn) {
  if (units <= 0) return;
  const auto* threads = context->device()->tensorflow_cpu_worker_threads();
  tensorflow::Shard(threads->num_threads, threads->workers, units, cost_per_unit, fn);
}

class FefmKernelBase : public OpKernel {
 public:
  explicit FefmKernelBase(OpKernelConstruction* context) : OpKernel(context) {
    std::vector<int64_t> left, right;
    OP_REQUIRES_OK(context, context->GetAttr("left", &left));
    OP_REQUIRES_OK(context, context->GetAttr("right", &right));
    OP_REQUIRES_OK(context, context->GetAttr("isa", &isa_));
    OP_REQUIRES(context, left.size() == right.size(),
                Invalid("left and right must list the same number of pairs, got ",
                                left.size(), " and ", right.size()));
    for (size_t p = 0; p < left.size(); ++p) {
      OP_REQUIRES(context, 0 <= left[p] && left[p] < right[p],
                  Invalid("pair ", p, " must satisfy 0 <= left < right, got (", left[p],
                                  ", ", right[p], ")"));
      left_.push_back(static_cast<int32_t>(left[p]));
      right_.push_back(static_cast<int32_t>(right[p]));
    }
  }

 protected:
  // Checks v (B, n, k) and W (P, k, k) against the pairs.
  absl::Status CheckShapes(const Tensor& v, const Tensor& w) const {
    if (v.dims() != 3) {
      return Invalid("v must be (batch, fields, k), got ", v.shape().DebugString());
    }
    if (w.dims() != 3 || w.dim_size(1) != v.dim_size(2) || w.dim_size(2) != v.dim_size(2)) {
      return Invalid("w must be (pairs, k, k) with k = ", v.dim_size(2), ", got ",
                             w.shape().DebugString());
    }
    if (w.dim_size(0) != static_cast<int64>(left_.size())) {
      return Invalid("w has ", w.dim_size(0), " pair matrices for ", left_.size(),
                             " pairs");
    }
    for (size_t p = 0; p < right_.size(); ++p) {
      if (right_[p] >= v.dim_size(1)) {
        return Invalid("pair ", p, " names field ", right_[p], " of ", v.dim_size(1));
      }
    }
    return absl::OkStatus();
  }

  std::vector<int32_t> left_, right_;
  std::string isa_;
};

template <typename T>
class FefmScoresOp : public FefmKernelBase {
 public:
  explicit FefmScoresOp(OpKernelConstruction* context) : FefmKernelBase(context) {
    OP_REQUIRES_OK(context, ChooseVariant<T>(isa_, &variant_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& v = context->input(0);
    const Tensor& w = context->input(1);
    OP_REQUIRES_OK(context, CheckShapes(v, w));
    const int64 batch = v.dim_size(0), fields = v.dim_size(1), k = v.dim_size(2);
    const int64 pairs = w.dim_size(0), kp = Padded(k, kLanes<T>);
    Tensor* scores = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({batch, pairs}), &scores));
    if (batch == 0 || pairs == 0) return;
    Problem<T> pr{batch, fields, k, kp, pairs, left_.data(), right_.data(),
                  v.flat<T>().data(), w.flat<T>().data(), nullptr, nullptr, nullptr};
    Tensor v_padded, w_padded;
    if (kp != k) {
      OP_REQUIRES_OK(context, Temporary(context, v.dtype(), batch * fields * kp, &v_padded));
      OP_REQUIRES_OK(context, Temporary(context, v.dtype(), pairs * k * kp, &w_padded));
      PadRows(pr.v, batch * fields, k, kp, v_padded.flat<T>().data());
      PadRows(pr.w, pairs * k, k, kp, w_padded.flat<T>().data());
      pr.v = v_padded.flat<T>().data();
      pr.w = w_padded.flat<T>().data();
    }
    const int64 block = BlockRows<T>(fields, kp);
    const int64 blocks = (batch + block - 1) / block;
    T* out = scores->flat<T>().data();
    const auto forward = variant_.forward;
    ParallelFor(context, blocks, 2 * block * pairs * k * kp, [&](int64 first, int64 last) {
      for (int64 blk = first; blk < last; ++blk) {
        forward(pr, blk * block, std::min(batch, (blk + 1) * block), out);
      }
    });
  }

 private:
  Variant<T> variant_;
};

template <typename T>
class FefmScoresGradOp : public FefmKernelBase {
 public:
  explicit FefmScoresGradOp(OpKernelConstruction* context) : FefmKernelBase(context) {
    OP_REQUIRES_OK(context, ChooseVariant<T>(isa_, &variant_));
  }

  void Compute(OpKernelContext* context) override {
    const Tensor& upstream = context->input(0);
    const Tensor& v = context->input(1);
    const Tensor& w = context->input(2);
    OP_REQUIRES_OK(context, CheckShapes(v, w));
    const int64 batch = v.dim_size(0), fields = v.dim_size(1), k = v.dim_size(2);
    const int64 pairs = w.dim_size(0), kp = Padded(k, kLanes<T>);
    OP_REQUIRES(context,
                upstream.dims() == 2 && upstream.dim_size(0) == batch &&
                    upstream.dim_size(1) == pairs,
                Invalid("upstream must be (", batch, ", ", pairs, "), got ",
                                upstream.shape().DebugString()));
    Tensor* d_v = nullptr;
    Tensor* d_w = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, v.shape(), &d_v));
    OP_REQUIRES_OK(context, context->allocate_output(1, w.shape(), &d_w));
    if (batch == 0 || pairs == 0) {
      d_v->flat<T>().setZero();
      d_w->flat<T>().setZero();
      return;
    }
    const bool padded = kp != k;
    Tensor v_padded, w_padded, w_transposed, dv_padded, dw_padded;
    auto temp = [&](int64 size, Tensor* tensor) {
      return Temporary(context, v.dtype(), size, tensor);
    };
    const T* w_in = w.flat<T>().data();
    Problem<T> pr{batch, fields, k, kp, pairs, left_.data(), right_.data(),
                  v.flat<T>().data(), w_in, nullptr, upstream.flat<T>().data(), nullptr};
    T* dv = d_v->flat<T>().data();
    T* dw = d_w->flat<T>().data();
    if (padded) {
      OP_REQUIRES_OK(context, temp(batch * fields * kp, &v_padded));
      OP_REQUIRES_OK(context, temp(pairs * k * kp, &w_padded));
      OP_REQUIRES_OK(context, temp(batch * fields * kp, &dv_padded));
      OP_REQUIRES_OK(context, temp(pairs * k * kp, &dw_padded));
      PadRows(pr.v, batch * fields, k, kp, v_padded.flat<T>().data());
      PadRows(pr.w, pairs * k, k, kp, w_padded.flat<T>().data());
      pr.v = v_padded.flat<T>().data();
      pr.w = w_padded.flat<T>().data();
      dv = dv_padded.flat<T>().data();
      dw = dw_padded.flat<T>().data();
    }
    std::atomic<bool> symmetric{true};  // checked pair by pair on the threads
    ParallelFor(context, pairs, k * k, [&](int64 first, int64 last) {
      if (!Symmetric(w_in + first * k * k, last - first, k)) symmetric = false;
    });
    if (symmetric) {
      pr.w_transposed = pr.w;
    } else {  // W^T, padded like W
      OP_REQUIRES_OK(context, temp(pairs * k * kp, &w_transposed));
      T* wt = w_transposed.flat<T>().data();
      for (int64 p = 0; p < pairs; ++p) {
        for (int64 a = 0; a < k; ++a) {
          T* row = wt + (p * k + a) * kp;
          for (int64 c = 0; c < k; ++c) row[c] = w_in[(p * k + c) * k + a];
          std::fill(row + k, row + kp, T(0));
        }
      }
      pr.w_transposed = wt;
    }
    const int64 block = BlockRows<T>(fields, kp);
    const int64 blocks = (batch + block - 1) / block;
    const auto embedding_gradient = variant_.embedding_gradient;
    ParallelFor(context, blocks, 4 * block * pairs * k * kp, [&](int64 first, int64 last) {
      for (int64 blk = first; blk < last; ++blk) {
        embedding_gradient(pr, blk * block, std::min(batch, (blk + 1) * block), dv);
      }
    });
    // dW_p reads fields i_p and j_p of every row: field by field, each is one contiguous run.
    Tensor by_field;
    OP_REQUIRES_OK(context, temp(fields * batch * kp, &by_field));
    T* by_field_data = by_field.flat<T>().data();
    ParallelFor(context, fields, 2 * batch * kp, [&](int64 first, int64 last) {
      for (int64 f = first; f < last; ++f) {
        for (int64 b = 0; b < batch; ++b) {
          std::copy(pr.Row(b, f), pr.Row(b, f) + kp, by_field_data + (f * batch + b) * kp);
        }
      }
    });
    pr.by_field = by_field_data;
    const auto matrix_gradient = variant_.matrix_gradient;
    ParallelFor(context, pairs, 2 * batch * k * kp, [&](int64 first, int64 last) {
      std::vector<T> scratch(batch * kp), columns((last - first) * batch);
      matrix_gradient(pr, first, last, scratch.data(), columns.data(), dw);
    });
    if (padded) {
      UnpadRows(dv, batch * fields, k, kp, d_v->flat<T>().data());
      UnpadRows(dw, pairs * k, k, kp, d_w->flat<T>().data());
    }
  }

 private:
  Variant<T> variant_;
};

}  // namespace fefm

using tensorflow::OpKernel;
using tensorflow::OpKernelConstruction;
using tensorflow::OpKernelContext;
using tensorflow::Tensor;
using tensorflow::TensorShape;
using tensorflow::shape_inference::InferenceContext;
using tensorflow::shape_inference::ShapeHandle;

REGISTER_OP("FefmScores")
    .Input("v: T")
    .Input("w: T")
    .Output("scores: T")
    .Attr("T: {float, double}")
    .Attr("left: list(int) >= 1")
    .Attr("right: list(int) >= 1")
    .Attr("isa: string = 'auto'")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle v, w;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &v));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 3, &w));
      std::vector<int64_t> left;
      TF_RETURN_IF_ERROR(c->GetAttr("left", &left));
      c->set_output(0, c->Matrix(c->Dim(v, 0), static_cast<int64_t>(left.size())));
      return absl::OkStatus();
    })
    .Doc(R"doc(
FEFM pair scores r[b, p] = v[b, left[p]]^T w[p] v[b, right[p]] for v (B, n, k), w (P, k, k).
isa: 'auto' (the widest instruction set this CPU runs), 'avx512f', 'avx2' or 'baseline'.
)doc");

REGISTER_OP("FefmScoresGrad")
    .Input("upstream: T")
    .Input("v: T")
    .Input("w: T")
    .Output("d_v: T")
    .Output("d_w: T")
    .Attr("T: {float, double}")
    .Attr("left: list(int) >= 1")
    .Attr("right: list(int) >= 1")
    .Attr("isa: string = 'auto'")
    .SetShapeFn([](InferenceContext* c) {
      c->set_output(0, c->input(1));
      c->set_output(1, c->input(2));
      return absl::OkStatus();
    })
    .Doc(R"doc(
Gradient of FefmScores: d_v and d_w of sum_{b,p} upstream[b, p] r[b, p].
)doc");

REGISTER_OP("FefmInstructionSet")
    .Output("name: string")
    .SetShapeFn(tensorflow::shape_inference::ScalarShape)
    .Doc("The instruction set FefmScores uses with isa='auto' on this CPU.");

class FefmInstructionSetOp : public OpKernel {
 public:
  using OpKernel::OpKernel;
  void Compute(OpKernelContext* context) override {
    Tensor* name = nullptr;
    OP_REQUIRES_OK(context, context->allocate_output(0, TensorShape({}), &name));
    fefm::Variant<float> variant;
    OP_REQUIRES_OK(context, fefm::ChooseVariant<float>("auto", &variant));
    name->scalar<tensorflow::tstring>()() = variant.name;
  }
};

REGISTER_KERNEL_BUILDER(Name("FefmInstructionSet").Device(tensorflow::DEVICE_CPU),
                        FefmInstructionSetOp);

#define FEFM_REGISTER(T)                                                                   \
  REGISTER_KERNEL_BUILDER(                                                                 \
      Name("FefmScores").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),            \
      fefm::FefmScoresOp<T>);                                                              \
  REGISTER_KERNEL_BUILDER(                                                                 \
      Name("FefmScoresGrad").Device(tensorflow::DEVICE_CPU).TypeConstraint<T>("T"),        \
      fefm::FefmScoresGradOp<T>);

FEFM_REGISTER(float)
FEFM_REGISTER(double)
