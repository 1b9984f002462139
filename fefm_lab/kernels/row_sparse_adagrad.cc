// Row-sparse AdaGrad and lazy Adam in one op each: the update of fefm_lab/training/optimizer.py
// for a gradient given as IndexedSlices (unsorted indices with repeats, values (N, ...)); and
// the same two updates for a dense gradient, each in one pass over the variable and its slots
// (TensorFlow ops make about seven: square, add, add, sqrt, multiply, divide, subtract).
//
// The TensorFlow-ops path runs unique + unsorted_segment_sum + scatter_add + gather + scatter_sub
// (AdaGrad), each a pass over memory with (N, k) or (U, k) temporaries. Here one op groups the
// N positions by distinct row (an open-addressing hash table, then the positions of each row
// contiguously), and a parallel loop over the U distinct rows sums each row's gradient into a
// k-float buffer and updates the variable and its slots in place:
//
//   AdaGrad:  g_r = sum of values[i] over i with indices[i] = r
//             a_r += g_r^2;  w_r -= lr * g_r / sqrt(a_r + eps)
//   Adam:     m_r = b1 m_r + (1 - b1) g_r;  v_r = b2 v_r + (1 - b2) g_r^2
//             w_r -= rate * m_r / (sqrt(v_r) + eps)    (rate carries the bias correction)
//
// Each row's values are added in increasing position, starting from zero, and every operation
// is a separate float operation in the order of the ops path (no -ffast-math; baseline x86-64 has
// no FMA to contract into), so the result equals the ops path's. Rows and slots are locked like
// TensorFlow's ResourceSparseApply* ops (all variables, in address order, exclusively) and put in
// copy-on-read mode, so a tensor read earlier is never changed under its reader.

#define EIGEN_USE_THREADS

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"
#include "tensorflow/core/kernels/training_op_helpers.h"

namespace tensorflow {
namespace {

using CPUDevice = Eigen::ThreadPoolDevice;
using shape_inference::InferenceContext;
using shape_inference::ShapeHandle;

// The positions 0..N-1 of the gradient grouped by distinct row: the positions of distinct row u
// (rows[u]) are order[offsets[u]] .. order[offsets[u + 1] - 1], increasing.
struct RowGroups {
  std::vector<int64_t> rows;
  std::vector<int64_t> offsets;
  std::vector<int64_t> order;
};

// An InvalidArgument status whose message is the arguments concatenated.
template <typename... Args>
absl::Status Invalid(const Args&... args) {
  return absl::InvalidArgumentError(absl::StrCat(args...));
}

// Runs fn(begin, end) over [0, units) on TensorFlow's intra-op threads.
template <typename Fn>
void ParallelFor(OpKernelContext* ctx, int64_t units, int64_t cost_per_unit, const Fn& fn) {
  using Params = thread::ThreadPool::SchedulingParams;
  ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
      units, Params::Adaptive(cost_per_unit), fn);
}

constexpr int64_t kAhead = 8;       // groups between a row's prefetch and its update
constexpr int64_t kHashAhead = 16;  // positions between a hash slot's prefetch and its probe

// Starts loading the cache lines of `count` values from `data` (a hint: no effect on results).
template <typename T>
inline void Prefetch(const T* data, int64_t count) {
  const char* begin = reinterpret_cast<const char*>(data);
  const char* end = reinterpret_cast<const char*>(data + count);
  for (const char* line = begin; line < end; line += 64) __builtin_prefetch(line);
}

// Groups the positions of `indices` by value; fails on the first index outside [0, num_rows)
// before anything is written.
template <typename Index>
absl::Status GroupByRow(typename TTypes<Index>::ConstVec indices, int64_t num_rows,
                        RowGroups* groups) {
  const int64_t n = indices.size();
  // Open addressing, linear probing, at most half full; a slot holds the row and its group.
  struct Slot {
    int64_t row;
    int64_t group;
  };
  int64_t capacity = 16;
  int shift = 60;  // a multiplicative hash keeps the top log2(capacity) bits of row * 2^64/phi
  while (capacity < 2 * n) {
    capacity <<= 1;
    --shift;
  }
  const uint64_t mask = static_cast<uint64_t>(capacity - 1);
  auto home = [shift](int64_t row) {
    return (static_cast<uint64_t>(row) * 0x9E3779B97F4A7C15ull) >> shift;
  };
  std::vector<Slot> table(capacity, Slot{-1, 0});
  std::vector<int64_t> group_of(n);
  std::vector<int64_t>& counts = groups->offsets;  // counts first, offsets after the scan
  counts.clear();
  groups->rows.clear();
  for (int64_t i = 0; i < n; ++i) {
    // The table is larger than the caches and rows arrive in random order: ask for a later
    // position's slot now.
    if (i + kHashAhead < n) {
      __builtin_prefetch(&table[home(static_cast<int64_t>(indices(i + kHashAhead)))]);
    }
    const int64_t row = static_cast<int64_t>(indices(i));
    if (row < 0 || row >= num_rows) {
      return Invalid("indices[", i, "] = ", row, " is not a row of the variable, which has ",
                     num_rows, " rows (expected 0 <= index < ", num_rows, ")");
    }
    uint64_t probe = home(row);
    while (table[probe].row != -1 && table[probe].row != row) probe = (probe + 1) & mask;
    Slot& slot = table[probe];
    if (slot.row == -1) {
      slot.row = row;
      slot.group = static_cast<int64_t>(groups->rows.size());
      groups->rows.push_back(row);
      counts.push_back(0);
    }
    group_of[i] = slot.group;
    ++counts[slot.group];
  }
  const int64_t num_groups = static_cast<int64_t>(groups->rows.size());
  std::vector<int64_t> cursor(num_groups);
  int64_t total = 0;
  for (int64_t u = 0; u < num_groups; ++u) {
    cursor[u] = total;
    total += counts[u];
  }
  counts.resize(num_groups + 1);
  std::copy(cursor.begin(), cursor.end(), counts.begin());
  counts[num_groups] = total;
  groups->order.resize(n);
  for (int64_t i = 0; i < n; ++i) groups->order[cursor[group_of[i]]++] = i;
  return absl::OkStatus();
}

// Checks the shapes: every slot like the variable, values (N, variable.shape[1:]), indices (N).
// Returns the row width (product of variable.shape[1:]).
absl::Status CheckShapes(const Tensor& variable, const std::vector<const Tensor*>& slots,
                         const Tensor& values, const Tensor& indices, int64_t* row_width) {
  if (variable.dims() < 1) {
    return Invalid("the variable must have rank >= 1, got shape ", variable.shape().DebugString());
  }
  for (const Tensor* slot : slots) {
    if (!slot->shape().IsSameSize(variable.shape())) {
      return Invalid("slot shape ", slot->shape().DebugString(), " differs from the variable's ",
                     variable.shape().DebugString());
    }
  }
  if (!TensorShapeUtils::IsVector(indices.shape())) {
    return Invalid("indices must be a vector, got shape ", indices.shape().DebugString());
  }
  bool values_fit = values.dims() == variable.dims() && values.dim_size(0) == indices.dim_size(0);
  for (int d = 1; values_fit && d < variable.dims(); ++d) {
    values_fit = values.dim_size(d) == variable.dim_size(d);
  }
  if (!values_fit) {
    return Invalid("values must have shape (", indices.dim_size(0),
                   ") + the variable's row shape, got ", values.shape().DebugString(),
                   " for a variable of shape ", variable.shape().DebugString());
  }
  *row_width = variable.dim_size(0) == 0 ? 0 : variable.NumElements() / variable.dim_size(0);
  return absl::OkStatus();
}

// The shared part of the row-sparse ops: lock, check, group, then `update(width, gradient,
// variable row, slot rows)` in parallel over distinct rows, gradient the row's summed values.
template <typename T, typename Index, int kSlots, typename Update>
void ApplyRowSparse(OpKernelContext* ctx, int num_scalars, const Update& update) {
  std::vector<int> variable_inputs;
  for (int input = 0; input <= kSlots; ++input) variable_inputs.push_back(input);
  auto locks = MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(ctx, /*do_lock=*/true,
                                                                  /*sparse=*/true,
                                                                  variable_inputs);
  Tensor variable;
  OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, T>(ctx, 0, /*lock_held=*/true,
                                                               /*sparse=*/true, &variable));
  OP_REQUIRES(ctx, variable.IsInitialized(),
              absl::FailedPreconditionError("the variable is not initialized"));
  Tensor slot_tensors[kSlots];
  std::vector<const Tensor*> slots;
  for (int s = 0; s < kSlots; ++s) {
    OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, T>(ctx, 1 + s, true, true,
                                                                 &slot_tensors[s]));
    OP_REQUIRES(ctx, slot_tensors[s].IsInitialized(),
                absl::FailedPreconditionError("an optimizer slot is not initialized"));
    slots.push_back(&slot_tensors[s]);
  }
  const int first_scalar = 1 + kSlots;
  const Tensor& values = ctx->input(first_scalar + num_scalars);
  const Tensor& indices = ctx->input(first_scalar + num_scalars + 1);
  int64_t width = 0;
  OP_REQUIRES_OK(ctx, CheckShapes(variable, slots, values, indices, &width));
  if (indices.NumElements() == 0 || width == 0) return;

  RowGroups groups;
  OP_REQUIRES_OK(ctx, GroupByRow<Index>(indices.vec<Index>(), variable.dim_size(0), &groups));

  T* variable_data = variable.flat<T>().data();
  T* slot_data[kSlots];
  for (int s = 0; s < kSlots; ++s) slot_data[s] = slot_tensors[s].template flat<T>().data();
  const T* value_data = values.flat<T>().data();
  const int64_t num_groups = static_cast<int64_t>(groups.rows.size());
  const int64_t mean_count = indices.NumElements() / num_groups;

  auto work = [&](int64_t begin, int64_t end) {
    std::vector<T> gradient(width);
    T* row_slots[kSlots];
    for (int64_t u = begin; u < end; ++u) {
      // Rows are scattered over tables larger than the caches: ask for the rows kAhead groups
      // on while this one is summed and updated.
      if (u + kAhead < end) {
        const int64_t ahead = groups.rows[u + kAhead] * width;
        Prefetch(variable_data + ahead, width);
        for (int s = 0; s < kSlots; ++s) Prefetch(slot_data[s] + ahead, width);
        for (int64_t p = groups.offsets[u + kAhead]; p < groups.offsets[u + kAhead + 1]; ++p) {
          Prefetch(value_data + groups.order[p] * width, width);
        }
      }
      std::fill(gradient.begin(), gradient.end(), T(0));
      for (int64_t p = groups.offsets[u]; p < groups.offsets[u + 1]; ++p) {
        const T* source = value_data + groups.order[p] * width;
        for (int64_t j = 0; j < width; ++j) gradient[j] += source[j];
      }
      const int64_t offset = groups.rows[u] * width;
      for (int s = 0; s < kSlots; ++s) row_slots[s] = slot_data[s] + offset;
      update(width, gradient.data(), variable_data + offset, row_slots);
    }
  };
  // Cost in cycles per distinct row: its positions' sums plus about 30 per updated entry.
  ParallelFor(ctx, num_groups, width * (mean_count + 30), work);
}

// The coefficients inputs first .. first + count - 1, which must be scalars.
template <typename T>
absl::Status ReadScalars(OpKernelContext* ctx, int first, int count, T* out) {
  for (int s = 0; s < count; ++s) {
    const Tensor& input = ctx->input(first + s);
    if (!TensorShapeUtils::IsScalar(input.shape())) {
      return Invalid("coefficient input ", first + s, " must be a scalar, got shape ",
                     input.shape().DebugString());
    }
    out[s] = input.scalar<T>()();
  }
  return absl::OkStatus();
}

// a += g^2;  w -= lr * g / sqrt(a + eps), in this order of float operations.
template <typename T>
struct AdagradUpdate {
  static constexpr int kSlots = 1;
  static constexpr int kScalars = 2;  // lr, epsilon
  T lr, epsilon;
  explicit AdagradUpdate(const T* c) : lr(c[0]), epsilon(c[1]) {}

  void operator()(int64_t width, const T* g, T* w, T* const* slots) const {
    T* a = slots[0];
    for (int64_t j = 0; j < width; ++j) {
      const T square = g[j] * g[j];
      a[j] = a[j] + square;
      const T step = lr * g[j];
      w[j] = w[j] - step / std::sqrt(a[j] + epsilon);
    }
  }
};

// m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  w -= rate * m / (sqrt(v) + eps).
template <typename T>
struct AdamUpdate {
  static constexpr int kSlots = 2;
  static constexpr int kScalars = 6;  // rate, beta1, 1 - beta1, beta2, 1 - beta2, epsilon
  T rate, beta1, one_minus_beta1, beta2, one_minus_beta2, epsilon;
  explicit AdamUpdate(const T* c)
      : rate(c[0]),
        beta1(c[1]),
        one_minus_beta1(c[2]),
        beta2(c[3]),
        one_minus_beta2(c[4]),
        epsilon(c[5]) {}

  void operator()(int64_t width, const T* g, T* w, T* const* slots) const {
    T* m = slots[0];
    T* v = slots[1];
    for (int64_t j = 0; j < width; ++j) {
      const T first = beta1 * m[j];
      m[j] = first + one_minus_beta1 * g[j];
      const T square = g[j] * g[j];
      const T second = beta2 * v[j];
      v[j] = second + one_minus_beta2 * square;
      const T step = rate * m[j];
      w[j] = w[j] - step / (std::sqrt(v[j]) + epsilon);
    }
  }
};

// Inputs: the variable, Update::kSlots slots, Update::kScalars coefficients, values, indices.
template <typename T, typename Index, typename Update>
class RowSparseOp : public OpKernel {
 public:
  explicit RowSparseOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    T coefficients[Update::kScalars];
    OP_REQUIRES_OK(ctx, ReadScalars<T>(ctx, 1 + Update::kSlots, Update::kScalars, coefficients));
    ApplyRowSparse<T, Index, Update::kSlots>(ctx, Update::kScalars, Update(coefficients));
  }
};

// Inputs: the variable, Update::kSlots slots, Update::kScalars coefficients, the gradient.
// Every element is updated, in chunks on TensorFlow's intra-op threads; a variable whose buffer
// a reader still holds is copied first (like TensorFlow's ResourceApply* ops).
template <typename T, typename Update>
class DenseOp : public OpKernel {
 public:
  explicit DenseOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}

  void Compute(OpKernelContext* ctx) override {
    constexpr int kSlots = Update::kSlots;
    T coefficients[Update::kScalars];
    OP_REQUIRES_OK(ctx, ReadScalars<T>(ctx, 1 + kSlots, Update::kScalars, coefficients));
    const Update update(coefficients);
    std::vector<int> variable_inputs;
    for (int input = 0; input <= kSlots; ++input) variable_inputs.push_back(input);
    auto locks = MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(ctx, /*do_lock=*/true,
                                                                    /*sparse=*/false,
                                                                    variable_inputs);
    Tensor tensors[1 + kSlots];
    for (int input = 0; input <= kSlots; ++input) {
      OP_REQUIRES_OK(ctx, GetInputTensorFromVariable<CPUDevice, T>(
                              ctx, input, /*lock_held=*/true, /*sparse=*/false, &tensors[input]));
      OP_REQUIRES(ctx, tensors[input].IsInitialized(),
                  absl::FailedPreconditionError(
                      absl::StrCat("input ", input, " (a variable) is not initialized")));
      OP_REQUIRES(ctx, tensors[input].shape().IsSameSize(tensors[0].shape()),
                  Invalid("slot shape ", tensors[input].shape().DebugString(),
                          " differs from the variable's ", tensors[0].shape().DebugString()));
    }
    const Tensor& gradient = ctx->input(1 + kSlots + Update::kScalars);
    OP_REQUIRES(ctx, gradient.shape().IsSameSize(tensors[0].shape()),
                Invalid("the gradient's shape ", gradient.shape().DebugString(),
                        " differs from the variable's ", tensors[0].shape().DebugString()));
    const int64_t size = tensors[0].NumElements();
    if (size == 0) return;
    T* variable_data = tensors[0].template flat<T>().data();
    T* slot_data[kSlots];
    for (int s = 0; s < kSlots; ++s) slot_data[s] = tensors[1 + s].template flat<T>().data();
    const T* gradient_data = gradient.flat<T>().data();
    constexpr int64_t kChunk = 4096;
    auto work = [&](int64_t begin, int64_t end) {
      T* chunk_slots[kSlots];
      for (int64_t chunk = begin; chunk < end; ++chunk) {
        const int64_t offset = chunk * kChunk;
        for (int s = 0; s < kSlots; ++s) chunk_slots[s] = slot_data[s] + offset;
        update(std::min(kChunk, size - offset), gradient_data + offset, variable_data + offset,
               chunk_slots);
      }
    };
    ParallelFor(ctx, (size + kChunk - 1) / kChunk, 30 * kChunk, work);
  }
};

absl::Status ScalarInputs(InferenceContext* c, int first, int count) {
  ShapeHandle unused;
  for (int i = first; i < first + count; ++i) {
    TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
  }
  return absl::OkStatus();
}

absl::Status GradientInputs(InferenceContext* c, int values_input) {
  ShapeHandle values, indices;
  TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(values_input), 1, &values));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(values_input + 1), 1, &indices));
  shape_inference::DimensionHandle unused;
  return c->Merge(c->Dim(values, 0), c->Dim(indices, 0), &unused);
}

}  // namespace

REGISTER_OP("FefmLabRowSparseAdagrad")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("lr: T")
    .Input("epsilon: T")
    .Input("values: T")
    .Input("indices: Tindices")
    .Attr("T: {float, double}")
    .Attr("Tindices: {int32, int64}")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(ScalarInputs(c, 2, 2));
      return GradientInputs(c, 4);
    })
    .Doc(R"doc(
Row-sparse AdaGrad, in place: per distinct row r of `indices`, g_r = sum of its `values` rows,
accum_r += g_r^2, var_r -= lr * g_r / sqrt(accum_r + epsilon). Indices outside the variable's
rows are an InvalidArgument error raised before anything changes.
)doc");

REGISTER_OP("FefmLabRowSparseAdam")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("rate: T")
    .Input("beta1: T")
    .Input("one_minus_beta1: T")
    .Input("beta2: T")
    .Input("one_minus_beta2: T")
    .Input("epsilon: T")
    .Input("values: T")
    .Input("indices: Tindices")
    .Attr("T: {float, double}")
    .Attr("Tindices: {int32, int64}")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) {
      TF_RETURN_IF_ERROR(ScalarInputs(c, 3, 6));
      return GradientInputs(c, 9);
    })
    .Doc(R"doc(
Row-sparse (lazy) Adam, in place: per distinct row r of `indices`, g_r = sum of its `values`
rows, m_r = beta1 m_r + one_minus_beta1 g_r, v_r = beta2 v_r + one_minus_beta2 g_r^2,
var_r -= rate * m_r / (sqrt(v_r) + epsilon); rate carries Adam's bias correction. Rows not in
`indices` keep their moments.
)doc");

REGISTER_OP("FefmLabDenseAdagrad")
    .Input("var: resource")
    .Input("accum: resource")
    .Input("lr: T")
    .Input("epsilon: T")
    .Input("grad: T")
    .Attr("T: {float, double}")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) { return ScalarInputs(c, 2, 2); })
    .Doc(R"doc(
AdaGrad on every element, in place and in one pass: accum += grad^2,
var -= lr * grad / sqrt(accum + epsilon).
)doc");

REGISTER_OP("FefmLabDenseAdam")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("rate: T")
    .Input("beta1: T")
    .Input("one_minus_beta1: T")
    .Input("beta2: T")
    .Input("one_minus_beta2: T")
    .Input("epsilon: T")
    .Input("grad: T")
    .Attr("T: {float, double}")
    .SetIsStateful()
    .SetShapeFn([](InferenceContext* c) { return ScalarInputs(c, 3, 6); })
    .Doc(R"doc(
Adam on every element, in place and in one pass: m = beta1 m + one_minus_beta1 grad,
v = beta2 v + one_minus_beta2 grad^2, var -= rate * m / (sqrt(v) + epsilon).
)doc");

#define REGISTER_KERNELS(T, Index)                                                    \
  REGISTER_KERNEL_BUILDER(Name("FefmLabRowSparseAdagrad")                             \
                              .Device(DEVICE_CPU)                                     \
                              .TypeConstraint<T>("T")                                 \
                              .TypeConstraint<Index>("Tindices"),                     \
                          RowSparseOp<T, Index, AdagradUpdate<T>>);                   \
  REGISTER_KERNEL_BUILDER(Name("FefmLabRowSparseAdam")                                \
                              .Device(DEVICE_CPU)                                     \
                              .TypeConstraint<T>("T")                                 \
                              .TypeConstraint<Index>("Tindices"),                     \
                          RowSparseOp<T, Index, AdamUpdate<T>>);

#define REGISTER_DENSE_KERNELS(T)                                                              \
  REGISTER_KERNEL_BUILDER(Name("FefmLabDenseAdagrad").Device(DEVICE_CPU).TypeConstraint<T>("T"), \
                          DenseOp<T, AdagradUpdate<T>>);                                       \
  REGISTER_KERNEL_BUILDER(Name("FefmLabDenseAdam").Device(DEVICE_CPU).TypeConstraint<T>("T"),    \
                          DenseOp<T, AdamUpdate<T>>);

REGISTER_KERNELS(float, int32_t)
REGISTER_KERNELS(float, int64_t)
REGISTER_KERNELS(double, int32_t)
REGISTER_KERNELS(double, int64_t)
REGISTER_DENSE_KERNELS(float)
REGISTER_DENSE_KERNELS(double)

#undef REGISTER_DENSE_KERNELS
#undef REGISTER_KERNELS

}  // namespace tensorflow
