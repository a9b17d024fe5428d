/*
 * bn_wasm.c - the engine's entry points for WebAssembly (the book's page "The engine
 * in the reader's browser"). Built by bitnetlib/deploy/wasm.py with clang --target=wasm32
 * together with the unmodified engine sources (bn_kernels.c, bn_kernels_fast.c,
 * bn_network.c) and the generated model headers of `bitnet export`.
 *
 * bn_wasm_models.h (generated next to this file at build time) includes the model
 * headers and defines BN_WASM_MODELS, the list of their bn_model addresses.
 *
 * The page writes a float32 image (the network's float input: 16x16 pixels,
 * normalised like the training data) into bn_wasm_input() and calls bn_wasm_run(m).
 * The image is quantized here to int8 exactly as the host does
 * (bitnetlib/deploy/intmodel.py input_codes, float32 arithmetic):
 *     amax  = max(max_i |x_i|, 1e-5f)
 *     scale = (1.0f / amax) * 127.0f
 *     code  = clamp(round_half_even(x_i * scale), -128, 127)
 * then bn_run_network runs it with a trace. Like everything in the engine: no libc,
 * no malloc; the buffers below are static (a wasm module is one instance per page).
 */
#include "bitnet.h"
#include "bn_wasm_models.h"

#define BN_WASM_MAX_INPUT 1024
#define BN_WASM_MAX_CLASSES 64
#define BN_WASM_MAX_TRACE 16384
#define BN_WASM_SCRATCH_WORDS 16384
#define BN_WASM_ERR_INPUT (-100)   /* a non-finite pixel */
#define BN_WASM_ERR_INDEX (-101)   /* no such model, or a trace range outside the trace */

static const bn_model *const models[] = BN_WASM_MODELS;
#define N_MODELS ((int)(sizeof models / sizeof models[0]))

static float input[BN_WASM_MAX_INPUT];
static int8_t codes[BN_WASM_MAX_INPUT];
static int32_t logits[BN_WASM_MAX_CLASSES];
static int32_t trace[BN_WASM_MAX_TRACE];
static int8_t acts[BN_WASM_MAX_TRACE];
static int32_t scratch[BN_WASM_SCRATCH_WORDS];

int bn_wasm_n_models(void) { return N_MODELS; }
float *bn_wasm_input(void) { return input; }
int8_t *bn_wasm_codes(void) { return codes; }
int32_t *bn_wasm_logits(void) { return logits; }
int32_t *bn_wasm_trace(void) { return trace; }
int8_t *bn_wasm_acts(void) { return acts; }

static const bn_model *model_at(int m)
{
    return (m >= 0 && m < N_MODELS) ? models[m] : NULL;
}

/* -1 for an unknown model; else the field asked for (0 model_id, 1 input_len,
 * 2 n_classes, 3 trace_len, 4 n_layers, 5 scratch bytes). */
int32_t bn_wasm_info(int m, int what)
{
    const bn_model *p = model_at(m);
    if (!p)
        return -1;
    switch (what) {
    case 0: return (int32_t)p->model_id;
    case 1: return p->input_len;
    case 2: return p->n_classes;
    case 3: return (int32_t)bn_trace_len(p);
    case 4: return p->n_layers;
    case 5: return (int32_t)bn_scratch_bytes(p);
    default: return -1;
    }
}

/* input[0..n) -> codes[0..n): the host's input_codes, float32 arithmetic. */
int bn_wasm_quantize(int n)
{
    float amax = 1e-5f, scale;
    int i;
    if (n < 0 || n > BN_WASM_MAX_INPUT)
        return BN_ERR_SHAPE;
    for (i = 0; i < n; i++) {
        float a = input[i] < 0 ? -input[i] : input[i];
        if (!(a <= 3.402823466e+38f))          /* NaN or inf */
            return BN_WASM_ERR_INPUT;
        if (a > amax)
            amax = a;
    }
    scale = (1.0f / amax) * 127.0f;
    for (i = 0; i < n; i++) {
        float r = __builtin_rintf(input[i] * scale);  /* f32.nearest: ties to even */
        codes[i] = (int8_t)(r > 127.0f ? 127 : r < -128.0f ? -128 : (int)r);
    }
    return BN_OK;
}

/* Quantize the input and run model m with a trace: the prediction (>= 0), or a
 * negative status. Logits in bn_wasm_logits(), the trace in bn_wasm_trace(). */
int bn_wasm_run(int m)
{
    const bn_model *p = model_at(m);
    uint16_t pred = 0;
    bn_status st;
    int q;
    if (!p)
        return BN_WASM_ERR_INDEX;
    if (p->n_classes > BN_WASM_MAX_CLASSES || bn_trace_len(p) > BN_WASM_MAX_TRACE)
        return BN_ERR_SHAPE;
    q = bn_wasm_quantize(p->input_len);
    if (q != BN_OK)
        return q;
    st = bn_run_network(p, codes, p->input_len, logits, p->n_classes, &pred,
                        scratch, sizeof scratch, trace, BN_WASM_MAX_TRACE);
    return st == BN_OK ? (int)pred : (int)st;
}

/* The engine's own ShiftNorm / ReLU on trace[start..start+n) into acts[0..n): the
 * int8 activations the next layer reads (shown by the page). */
int bn_wasm_acts_of(int start, int n)
{
    if (start < 0 || n < 1 || start + n > BN_WASM_MAX_TRACE)
        return BN_WASM_ERR_INDEX;
    return bn_shiftnorm_relu(trace + start, (size_t)n, acts, NULL, NULL);
}
