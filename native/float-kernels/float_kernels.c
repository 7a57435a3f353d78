// The all-reduce's float32 loops in C (src/collective/float-kernels.ts loads this; float-sum.ts has
// the same functions in JavaScript, used where this addon is not built). V8 does not vectorize the
// JavaScript loops (2-3 ns per element); compiled, the sums and scans run at memory speed.
//
// Results must be the bytes the JavaScript versions give, on every member, whichever of the two
// it runs: each addition is one IEEE float32 addition, rounded to nearest (built with
// -ffp-contract=off and without -ffast-math, so nothing is fused or reordered). The finiteness
// test reads the float's exponent bits, which is exact. Only the sums of squares (a measurement
// the coordinator compares with slack, src/coordinator/contribution-check.ts) are summed in another
// order than the JavaScript ones: eight float64 partial sums, then their sum.
//
// Every function checks its arguments (Float32Array or Float64Array, lengths) before it touches
// memory, and throws a TypeError or RangeError naming the argument; it never reads or writes out
// of the arrays it is given.
#include <node_api.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
// AVX2 where the CPU has it, SSE2 otherwise: one binary for every x86-64 node (resolved at load).
#define KERNEL __attribute__((target_clones("avx2", "default")))
#else
#define KERNEL
#endif

#define EXP_MASK 0x7f800000u

static inline uint32_t bits_of(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}

// out[i] = a[i] + b[i]; returns nonzero when some out[i] is NaN or ±Inf. `out` may be `a` or `b`
// (no restrict: the compiler checks for overlap and still vectorizes).
KERNEL static uint32_t sum2(float *out, const float *a, const float *b, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    float x = a[i] + b[i];
    out[i] = x;
    bad |= (bits_of(x) & EXP_MASK) == EXP_MASK;
  }
  return bad;
}

// out[i] += a[i]; returns nonzero when some out[i] is NaN or ±Inf.
KERNEL static uint32_t add1(float *out, const float *a, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    float x = out[i] + a[i];
    out[i] = x;
    bad |= (bits_of(x) & EXP_MASK) == EXP_MASK;
  }
  return bad;
}

// Σ a[i]² in float64: eight partial sums over i mod 8, then added in order.
KERNEL static double squares(const float *restrict a, size_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; j++) acc[j] += (double)a[i + j] * (double)a[i + j];
  for (int j = 0; i < n; i++, j++) acc[j] += (double)a[i] * (double)a[i];
  double s = 0;
  for (int j = 0; j < 8; j++) s += acc[j];
  return s;
}

// out[i] = a[i] + b[i] as sum2, and in the same pass sq[0] = Σ a[i]², sq[1] = Σ b[i]² as squares().
KERNEL static uint32_t sum2_measured(float *out, const float *a, const float *b, size_t n, double *sq) {
  double sa[8] = {0, 0, 0, 0, 0, 0, 0, 0}, sb[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  uint32_t bad = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; j++) {
      float x = a[i + j], y = b[i + j];
      sa[j] += (double)x * (double)x;
      sb[j] += (double)y * (double)y;
      float s = x + y;
      out[i + j] = s;
      bad |= (bits_of(s) & EXP_MASK) == EXP_MASK;
    }
  }
  for (int j = 0; i < n; i++, j++) {
    float x = a[i], y = b[i];
    sa[j] += (double)x * (double)x;
    sb[j] += (double)y * (double)y;
    float s = x + y;
    out[i] = s;
    bad |= (bits_of(s) & EXP_MASK) == EXP_MASK;
  }
  sq[0] = 0;
  sq[1] = 0;
  for (int j = 0; j < 8; j++) {
    sq[0] += sa[j];
    sq[1] += sb[j];
  }
  return bad;
}

// out[i] += a[i] as add1, and in the same pass sq[0] = Σ a[i]² as squares().
KERNEL static uint32_t add1_measured(float *out, const float *a, size_t n, double *sq) {
  double sa[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  uint32_t bad = 0;
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int j = 0; j < 8; j++) {
      float x = a[i + j];
      sa[j] += (double)x * (double)x;
      float s = out[i + j] + x;
      out[i + j] = s;
      bad |= (bits_of(s) & EXP_MASK) == EXP_MASK;
    }
  }
  for (int j = 0; i < n; i++, j++) {
    float x = a[i];
    sa[j] += (double)x * (double)x;
    float s = out[i] + x;
    out[i] = s;
    bad |= (bits_of(s) & EXP_MASK) == EXP_MASK;
  }
  sq[0] = 0;
  for (int j = 0; j < 8; j++) sq[0] += sa[j];
  return bad;
}

// Nonzero when some a[i] is NaN or ±Inf.
KERNEL static uint32_t any_non_finite(const float *restrict a, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; i++) bad |= (bits_of(a[i]) & EXP_MASK) == EXP_MASK;
  return bad;
}

// dst[i] = src[i]; nonzero when some value is NaN or ±Inf (the copy is made either way).
KERNEL static uint32_t copy_checked(float *restrict dst, const float *restrict src, size_t n) {
  uint32_t bad = 0;
  for (size_t i = 0; i < n; i++) {
    float x = src[i];
    dst[i] = x;
    bad |= (bits_of(x) & EXP_MASK) == EXP_MASK;
  }
  return bad;
}

// --- N-API glue ---------------------------------------------------------------------------------

static int throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return 0;
}

// The data and length of argument `v`, which must be a typed array of `want` type.
static int typed(napi_env env, napi_value v, napi_typedarray_type want, const char *err, void **data,
                 size_t *len) {
  bool is;
  if (napi_is_typedarray(env, v, &is) != napi_ok || !is) return throw_type(env, err);
  napi_typedarray_type t;
  napi_value ab;
  size_t off;
  if (napi_get_typedarray_info(env, v, &t, len, data, &ab, &off) != napi_ok || t != want)
    return throw_type(env, err);
  if (*len > 0 && *data == NULL) return throw_type(env, err); // a detached buffer
  return 1;
}

static int args(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return 0;
  if (argc < want) {
    napi_throw_type_error(env, NULL, "float-kernels: too few arguments");
    return 0;
  }
  return 1;
}

static int same_length(napi_env env, size_t a, size_t b, const char *msg) {
  if (a == b) return 1;
  napi_throw_range_error(env, NULL, msg);
  return 0;
}

static napi_value boolean(napi_env env, uint32_t x) {
  napi_value r;
  napi_get_boolean(env, x != 0, &r);
  return r;
}

// sum(out, a, b): out = a + b, all Float32Array of one length; returns true when a result is not finite.
static napi_value Sum(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  void *o, *a, *b;
  size_t no, na, nb;
  if (!args(env, info, 3, argv) ||
      !typed(env, argv[0], napi_float32_array, "sum: out must be a Float32Array", &o, &no) ||
      !typed(env, argv[1], napi_float32_array, "sum: a must be a Float32Array", &a, &na) ||
      !typed(env, argv[2], napi_float32_array, "sum: b must be a Float32Array", &b, &nb) ||
      !same_length(env, no, na, "sum: out and a differ in length") ||
      !same_length(env, no, nb, "sum: out and b differ in length"))
    return NULL;
  return boolean(env, sum2(o, a, b, no));
}

// add(out, a): out += a; returns true when a result is not finite.
static napi_value Add(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *o, *a;
  size_t no, na;
  if (!args(env, info, 2, argv) ||
      !typed(env, argv[0], napi_float32_array, "add: out must be a Float32Array", &o, &no) ||
      !typed(env, argv[1], napi_float32_array, "add: a must be a Float32Array", &a, &na) ||
      !same_length(env, no, na, "add: out and a differ in length"))
    return NULL;
  return boolean(env, add1(o, a, no));
}

// sumMeasured(out, a, b, sq): out = a + b; sq[0] = Σ a², sq[1] = Σ b² (sq: a Float64Array of 2+).
static napi_value SumMeasured(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  void *o, *a, *b, *q;
  size_t no, na, nb, nq;
  if (!args(env, info, 4, argv) ||
      !typed(env, argv[0], napi_float32_array, "sumMeasured: out must be a Float32Array", &o, &no) ||
      !typed(env, argv[1], napi_float32_array, "sumMeasured: a must be a Float32Array", &a, &na) ||
      !typed(env, argv[2], napi_float32_array, "sumMeasured: b must be a Float32Array", &b, &nb) ||
      !typed(env, argv[3], napi_float64_array, "sumMeasured: sq must be a Float64Array", &q, &nq) ||
      !same_length(env, no, na, "sumMeasured: out and a differ in length") ||
      !same_length(env, no, nb, "sumMeasured: out and b differ in length"))
    return NULL;
  if (nq < 2) {
    napi_throw_range_error(env, NULL, "sumMeasured: sq must hold 2 values");
    return NULL;
  }
  return boolean(env, sum2_measured(o, a, b, no, q));
}

// addMeasured(out, a, sq): out += a; sq[0] = Σ a² (sq: a Float64Array of 1+).
static napi_value AddMeasured(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  void *o, *a, *q;
  size_t no, na, nq;
  if (!args(env, info, 3, argv) ||
      !typed(env, argv[0], napi_float32_array, "addMeasured: out must be a Float32Array", &o, &no) ||
      !typed(env, argv[1], napi_float32_array, "addMeasured: a must be a Float32Array", &a, &na) ||
      !typed(env, argv[2], napi_float64_array, "addMeasured: sq must be a Float64Array", &q, &nq) ||
      !same_length(env, no, na, "addMeasured: out and a differ in length"))
    return NULL;
  if (nq < 1) {
    napi_throw_range_error(env, NULL, "addMeasured: sq must hold 1 value");
    return NULL;
  }
  return boolean(env, add1_measured(o, a, no, q));
}

// squares(a): Σ a[i]² in float64.
static napi_value Squares(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *a;
  size_t na;
  if (!args(env, info, 1, argv) ||
      !typed(env, argv[0], napi_float32_array, "squares: a must be a Float32Array", &a, &na))
    return NULL;
  napi_value r;
  napi_create_double(env, squares(a, na), &r);
  return r;
}

// anyNonFinite(a): true when some a[i] is NaN or ±Inf.
static napi_value AnyNonFinite(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  void *a;
  size_t na;
  if (!args(env, info, 1, argv) ||
      !typed(env, argv[0], napi_float32_array, "anyNonFinite: a must be a Float32Array", &a, &na))
    return NULL;
  return boolean(env, any_non_finite(a, na));
}

// copyChecked(dst, src): dst = src; true when some value is NaN or ±Inf.
static napi_value CopyChecked(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  void *d, *s;
  size_t nd, ns;
  if (!args(env, info, 2, argv) ||
      !typed(env, argv[0], napi_float32_array, "copyChecked: dst must be a Float32Array", &d, &nd) ||
      !typed(env, argv[1], napi_float32_array, "copyChecked: src must be a Float32Array", &s, &ns) ||
      !same_length(env, nd, ns, "copyChecked: dst and src differ in length"))
    return NULL;
  // Overlapping arrays would make `restrict` a lie; memmove semantics are not needed by any caller.
  if (nd > 0 && (char *)d < (char *)s + ns * 4 && (char *)s < (char *)d + nd * 4) {
    napi_throw_range_error(env, NULL, "copyChecked: dst and src overlap");
    return NULL;
  }
  return boolean(env, copy_checked(d, s, nd));
}

static void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &f);
  napi_set_named_property(env, exports, name, f);
}

NAPI_MODULE_INIT() {
  export_fn(env, exports, "sum", Sum);
  export_fn(env, exports, "add", Add);
  export_fn(env, exports, "sumMeasured", SumMeasured);
  export_fn(env, exports, "addMeasured", AddMeasured);
  export_fn(env, exports, "squares", Squares);
  export_fn(env, exports, "anyNonFinite", AnyNonFinite);
  export_fn(env, exports, "copyChecked", CopyChecked);
  return exports;
}
