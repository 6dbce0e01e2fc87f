"""Write a :class:`~edgerl.export.native.ir.Program` as ``policy.h`` + ``policy.c`` (C99, libm only).

The code allocates nothing and writes no global: weights are ``static const float``, activations
live in the caller's ``edgerl_scratch``, so ``edgerl_act`` is reentrant (one scratch per thread).
Each layer is one commented loop nest. Dense weights are stored transposed (``[in][out]``), so the
inner loop runs over outputs with unit stride: independent accumulators that the compiler
vectorises without reassociating any sum (every output still adds its inputs in order).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from edgerl.export.native.ir import (
    ActionChain,
    Activation,
    Argmax,
    Dense,
    Layer,
    Normalize,
    Program,
    RNNLayer,
    Scale,
    SquashRescale,
)

PER_LINE = 8


@dataclass
class Meta:
    """What the header records about the policy's origin and contract."""

    algo: str
    env_id: str
    source: str
    source_sha256: str
    edgerl_version: str
    action_low: list[float] | None = None
    action_high: list[float] | None = None
    obs_names: list[str] | None = None
    baked_in: list[str] = field(default_factory=list)


def _lit(v: float) -> str:
    """A float32 literal that reads back to the same float32 (9 significant digits); a value that is
    infinite in float32 (an unbounded action, or a bound past float32's range) is math.h's ``INFINITY``."""
    with np.errstate(over="ignore"):
        f = float(np.float32(v))
    if np.isinf(f):
        return "(-INFINITY)" if f < 0 else "INFINITY"
    s = f"{f:.9g}"
    if "e" not in s and "." not in s and "inf" not in s and "nan" not in s:
        s += ".0"
    return s + "f"


def _array(values: np.ndarray, indent: str = "    ") -> str:
    flat = [_lit(v) for v in np.asarray(values, np.float32).reshape(-1)]
    lines = [indent + ", ".join(flat[i:i + PER_LINE]) + "," for i in range(0, len(flat), PER_LINE)]
    return "\n".join(lines)


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def _act_expr(fn: str, alpha: float, v: str) -> str:
    return {
        "identity": v,
        "relu": f"({v} > 0.0f ? {v} : 0.0f)",
        "elu": f"({v} > 0.0f ? {v} : {_lit(alpha)} * expm1f({v}))",
        "leaky_relu": f"({v} > 0.0f ? {v} : {_lit(alpha)} * {v})",
        "tanh": f"tanhf({v})",
        "silu": f"({v} / (1.0f + expf(-{v})))",
        "sigmoid": f"(1.0f / (1.0f + expf(-{v})))",
    }[fn]


@dataclass
class _Buf:
    name: str
    """C expression of the buffer's base (``obs``, ``s->a``, ``s->phi``)."""
    n: int


class _Emitter:
    """Assigns each layer's input/output to scratch buffers and writes its loop nest."""

    def __init__(self, program: Program) -> None:
        self.p = program
        self.consts: list[str] = []
        self.body: list[str] = []
        self.sizes = {"a": 1, "b": 1, "phi": 0, "st": 0, "g": 0, "g2": 0}
        self.cur = _Buf("obs", program.obs_dim)

    def _use(self, buf: str, n: int) -> str:
        self.sizes[buf] = max(self.sizes[buf], n)
        return f"s->{buf}"

    def _elementwise(self) -> str:
        """Output buffer of an elementwise layer: in place, except that ``obs`` is read-only."""
        return self._use("a", self.cur.n) if self.cur.name == "obs" else self.cur.name

    def _const(self, ident: str, arr: np.ndarray, comment: str = "") -> None:
        dims = "".join(f"[{d}]" for d in arr.shape)
        note = f"  /* {comment} */" if comment else ""
        if arr.ndim == 1:
            body = _array(arr)
        else:  # one brace group per row (-Wmissing-braces)
            body = "\n".join(f"    {{  /* row {r} */\n{_array(row, ' ' * 8)}\n    }}," for r, row in enumerate(arr))
        self.consts.append(f"static const float {ident}{dims} = {{{note}\n{body}\n}};")

    def layer(self, layer: Layer) -> None:
        getattr(self, f"_{type(layer).__name__.lower()}")(layer)

    def _normalize(self, la: Normalize) -> None:
        i = _ident(la.name)
        self._const(f"{i}_mean", la.mean)
        self._const(f"{i}_std", la.std)
        src, n, dst = self.cur.name, self.cur.n, self._elementwise()
        c = _lit(la.clip)
        self.body += [f"    /* {la.name}: y = clamp((x - mean) / std, -{c}, {c}) */",
                      f"    for (o = 0; o < {n}; ++o) {{",
                      f"        const float v = ({src}[o] - {i}_mean[o]) / {i}_std[o];",
                      f"        {dst}[o] = v < -{c} ? -{c} : (v > {c} ? {c} : v);",
                      "    }"]
        self.cur = _Buf(dst, n)

    def _scale(self, la: Scale) -> None:
        i = _ident(la.name)
        self._const(f"{i}_w", la.weight)
        self._const(f"{i}_b", la.bias)
        src, n, dst = self.cur.name, self.cur.n, self._elementwise()
        self.body += [f"    /* {la.name}: y = x * w + b per feature */",
                      f"    for (o = 0; o < {n}; ++o) {dst}[o] = {src}[o] * {i}_w[o] + {i}_b[o];"]
        self.cur = _Buf(dst, n)

    def _activation(self, la: Activation) -> None:
        src, n, dst = self.cur.name, self.cur.n, self._elementwise()
        self.body += [f"    /* {la.name}: {la.fn} */",
                      f"    for (o = 0; o < {n}; ++o) {{ const float v = {src}[o]; {dst}[o] = "
                      f"{_act_expr(la.fn, la.alpha, 'v')}; }}"]
        self.cur = _Buf(dst, n)

    def _dense(self, la: Dense) -> None:
        i = _ident(la.name)
        n_out, n_in = la.weight.shape
        self._const(f"{i}_w", np.ascontiguousarray(la.weight.T), f"[in {n_in}][out {n_out}], transposed")
        self._const(f"{i}_b", la.bias)
        src = self.cur.name
        if la.concat:  # y = [x, f(Wx + b)] in the phi buffer: copy x there first unless it already is
            if src != "s->phi":
                self._use("phi", n_in)
                self.body += [f"    for (o = 0; o < {n_in}; ++o) s->phi[o] = {src}[o];  /* {la.name}: concat input */"]
            src, dst = "s->phi", f"(s->phi + {n_in})"
            self._use("phi", n_in + n_out)
        else:
            dst = self._use("b" if src == "s->a" else "a", n_out)
        what = " + ".join([f"Linear {n_in} -> {n_out}", *la.folded])
        concat = ", output appended to its input (concat)" if la.concat else ""
        self.body += [f"    /* {la.name}: {what}{concat} */",
                      "    {",
                      f"        float *const y = {dst};",
                      f"        for (o = 0; o < {n_out}; ++o) y[o] = {i}_b[o];",
                      f"        for (i = 0; i < {n_in}; ++i) {{",
                      f"            const float xi = {src}[i];",
                      f"            for (o = 0; o < {n_out}; ++o) y[o] += {i}_w[i][o] * xi;",
                      "        }"]
        if la.fn != "identity":
            self.body.append(f"        for (o = 0; o < {n_out}; ++o) {{ const float v = y[o]; y[o] = "
                             f"{_act_expr(la.fn, la.alpha, 'v')}; }}")
        self.body.append("    }")
        self.cur = _Buf("s->phi" if la.concat else dst, n_in + n_out if la.concat else n_out)

    def _rnnlayer(self, la: RNNLayer) -> None:
        """One LSTM/GRU layer: the new state goes to ``s->st`` (copied to ``state_out`` only once
        the action is known to be finite), so ``state_out`` may alias ``state_in``."""
        assert self.p.state is not None
        _, n_layers, hid = self.p.state
        i, lstm = _ident(la.name), la.kind == "lstm"
        gates, n_in = (4 if lstm else 3) * hid, la.w_ih.shape[1]
        self._const(f"{i}_wih", np.ascontiguousarray(la.w_ih.T), f"[in {n_in}][gates {gates}], transposed")
        self._const(f"{i}_whh", np.ascontiguousarray(la.w_hh.T), f"[hidden {hid}][gates {gates}], transposed")
        st = self._use("st", self.p.state_size)
        src = self.cur.name if la.index == 0 else f"({st} + {(la.index - 1) * hid})"
        h_in, h_out = f"(state_in + {la.index * hid})", f"({st} + {la.index * hid})"
        g = self._use("g", gates)
        gh = g if lstm else self._use("g2", gates)
        if lstm:  # one bias: torch adds b_ih and b_hh to the same pre-activations
            self._const(f"{i}_b", la.b_ih + la.b_hh, "b_ih + b_hh")
            init = [f"        for (o = 0; o < {gates}; ++o) {g}[o] = {i}_b[o];"]
        else:  # GRU: the n gate scales W_hn h + b_hn by r, so the two halves stay apart
            self._const(f"{i}_bih", la.b_ih)
            self._const(f"{i}_bhh", la.b_hh)
            init = [f"        for (o = 0; o < {gates}; ++o) {{ {g}[o] = {i}_bih[o]; {gh}[o] = {i}_bhh[o]; }}"]
        c_in, c_out = f"(state_in + {(n_layers + la.index) * hid})", f"({st} + {(n_layers + la.index) * hid})"
        update = ([f"            const float c = edgerl_sigmoid({g}[{hid} + o]) * {c_in}[o] + edgerl_sigmoid({g}[o]) * "
                   f"tanhf({g}[{2 * hid} + o]);",
                   f"            {c_out}[o] = c;",
                   f"            {h_out}[o] = edgerl_sigmoid({g}[{3 * hid} + o]) * tanhf(c);"] if lstm else
                  [f"            const float r = edgerl_sigmoid({g}[o] + {gh}[o]);",
                   f"            const float z = edgerl_sigmoid({g}[{hid} + o] + {gh}[{hid} + o]);",
                   f"            const float n = tanhf({g}[{2 * hid} + o] + r * {gh}[{2 * hid} + o]);",
                   f"            {h_out}[o] = (1.0f - z) * n + z * {h_in}[o];"])
        what = "LSTM (gates i f g o)" if lstm else "GRU (gates r z n)"
        self.body += [f"    /* {la.name}: {what} layer {la.index}, {n_in} -> {hid} */",
                      "    {",
                      *init,
                      f"        for (i = 0; i < {n_in}; ++i) {{",
                      f"            const float xi = {src}[i];",
                      f"            for (o = 0; o < {gates}; ++o) {g}[o] += {i}_wih[i][o] * xi;",
                      "        }",
                      f"        for (i = 0; i < {hid}; ++i) {{",
                      f"            const float hi = {h_in}[i];",
                      f"            for (o = 0; o < {gates}; ++o) {gh}[o] += {i}_whh[i][o] * hi;",
                      "        }",
                      f"        for (o = 0; o < {hid}; ++o) {{",
                      *update,
                      "        }",
                      "    }"]
        if la.index == n_layers - 1:
            self.body += [f"    for (o = 0; o < {self.p.state_size}; ++o) {{",
                          f"        if (!isfinite({st}[o])) return EDGERL_ERR_STATE_NONFINITE;",
                          "    }"]
        self.cur = _Buf(h_out, hid)

    def _squashrescale(self, la: SquashRescale) -> None:
        self._const("action_low", la.low)
        self._const("action_half_range", la.half_range)
        src, n = self.cur.name, self.cur.n
        out = self._use("a" if src != "s->a" else "b", n)
        self.body += [f"    /* {la.name}: action = low + (tanh(x) + 1) * (high - low) / 2 */",
                      f"    for (o = 0; o < {n}; ++o) {{",
                      f"        {out}[o] = action_low[o] + (tanhf({src}[o]) + 1.0f) * action_half_range[o];",
                      f"        if (!isfinite({out}[o])) return EDGERL_ERR_ACTION_NONFINITE;",
                      "    }",
                      f"    for (o = 0; o < {n}; ++o) action[o] = {out}[o];"]

    def _actionchain(self, la: ActionChain) -> None:
        src, n = self.cur.name, self.cur.n
        out = self._use("a" if src != "s->a" else "b", n)
        steps, expr = [], "v"
        if la.squash:
            steps.append("v = tanhf(v);")
        if la.clips:
            self._const("action_clip_low", la.clip_low)
            self._const("action_clip_high", la.clip_high)
            steps.append("v = v < action_clip_low[o] ? action_clip_low[o] : (v > action_clip_high[o] ? "
                         "action_clip_high[o] : v);")  # comparisons keep a NaN a NaN
        if la.scales:
            self._const("action_scale", la.scale)
            expr = "v * action_scale[o]"
        if la.offsets:
            self._const("action_offset", la.offset)
            expr = f"{expr} + action_offset[o]"
        what = " -> ".join(w for w, on in (("tanh", la.squash), ("clip", la.clips), ("scale", la.scales),
                                           ("offset", la.offsets)) if on) or "identity"
        self.body += [f"    /* {la.name}: {what} per action */",
                      f"    for (o = 0; o < {n}; ++o) {{",
                      f"        float v = {src}[o];",
                      *(f"        {line}" for line in steps),
                      f"        {out}[o] = {expr};",
                      f"        if (!isfinite({out}[o])) return EDGERL_ERR_ACTION_NONFINITE;",
                      "    }",
                      f"    for (o = 0; o < {n}; ++o) action[o] = {out}[o];"]

    def _argmax(self, la: Argmax) -> None:
        src, n = self.cur.name, self.cur.n
        self.body += [f"    /* {la.name}: action = {la.start} + index of the first largest score */",
                      "    i = 0;",
                      f"    for (o = 0; o < {n}; ++o) {{",
                      f"        if ({src}[o] != {src}[o]) return EDGERL_ERR_ACTION_NONFINITE;  /* NaN score */",
                      f"        if ({src}[o] > {src}[i]) i = o;",
                      "    }",
                      f"    action[0] = (edgerl_action_t)(i + {la.start});"]


def _c_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _comment(s: str) -> str:
    return s.replace("*/", "* /")


def emit(program: Program, meta: Meta) -> tuple[str, str]:
    """``(policy.h, policy.c)`` texts of ``program``."""
    em = _Emitter(program)
    for layer in program.layers:
        em.layer(layer)
    p = program
    scratch = [f"    float {k}[{v}];" for k, v in em.sizes.items() if v]
    act_dim = 1 if p.discrete else p.act_dim
    chain = " -> ".join(["obs", *meta.baked_in, "action"])
    kind, n_layers, hid = p.state or ("", 0, 0)
    if p.state is None:
        api = [
            " * int edgerl_act(const float *obs, edgerl_action_t *action, edgerl_scratch *s):",
            " *   obs: EDGERL_OBS_DIM floats (the raw observation; the normaliser is baked in);"]
        signature = "int edgerl_act(const float *obs, edgerl_action_t *action, edgerl_scratch *s)"
        recurrent_api: list[str] = []
    else:
        names = " and ".join(("h", "c")[:p.state_tensors])
        api = [
            " * int edgerl_step(const float *obs, const float *state_in, edgerl_action_t *action,",
            " *                 float *state_out, edgerl_scratch *s):",
            f" *   one control step of a {kind.upper()} policy: the state is EDGERL_STATE_SIZE floats, {names}",
            f" *   ([tensor][layer {n_layers}][unit {hid}], as the ONNX graph's state inputs). Set it to zeros",
            " *   when an episode starts, feed state_out back as the next state_in (they may be the same",
            " *   buffer). On an error neither action nor state_out is written: keep the previous state.",
            " *   obs: EDGERL_OBS_DIM floats (the raw observation; the normaliser is baked in);"]
        signature = ("int edgerl_step(const float *obs, const float *state_in, edgerl_action_t *action, "
                     "float *state_out, edgerl_scratch *s)")
        recurrent_api = [f"#define EDGERL_STATE_KIND {_c_string(kind)}",
                         f"#define EDGERL_STATE_TENSORS {p.state_tensors}",
                         f"#define EDGERL_STATE_LAYERS {n_layers}",
                         f"#define EDGERL_STATE_HIDDEN {hid}"]
    header = [
        f"/* policy.h: {meta.algo} policy for {_comment(meta.env_id)}, generated by edgerl {meta.edgerl_version} "
        "(edgerl export --format c). Do not edit.",
        f" * source: {_comment(meta.source)}",
        f" * sha256: {meta.source_sha256}",
        f" * function: {chain}",
        f" * {p.params} constants ({p.params * 4} bytes of weights), {p.macs} multiply-accumulates per call.",
        " *",
        *api,
        " *   action: EDGERL_ACT_DIM floats in [edgerl_action_low, edgerl_action_high] (continuous), or one",
        " *     int32_t index in [0, EDGERL_N_ACTIONS) (discrete);",
        " *   s: caller-owned scratch (one per thread; no allocation, no global state: reentrant).",
        " *   Returns EDGERL_OK, or EDGERL_ERR_OBS_NONFINITE / EDGERL_ERR_ACTION_NONFINITE (/",
        " *   EDGERL_ERR_STATE_NONFINITE) with *action left unchanged (keep the last safe action).",
        " */",
        "#ifndef EDGERL_POLICY_H",
        "#define EDGERL_POLICY_H",
        "",
        "#include <stdint.h>",
        "",
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        f"#define EDGERL_OBS_DIM {p.obs_dim}",
        f"#define EDGERL_ACT_DIM {act_dim}",
        f"#define EDGERL_DISCRETE {int(p.discrete)}",
        f"#define EDGERL_N_ACTIONS {p.act_dim if p.discrete else 0}",
        f"#define EDGERL_PARAMS {p.params}",
        f"#define EDGERL_MACS {p.macs}",
        f"#define EDGERL_RECURRENT {int(p.state is not None)}",
        f"#define EDGERL_STATE_SIZE {p.state_size}",
        *recurrent_api,
        f"#define EDGERL_ALGO {_c_string(meta.algo)}",
        f"#define EDGERL_ENV_ID {_c_string(meta.env_id)}",
        f"#define EDGERL_SOURCE_SHA256 {_c_string(meta.source_sha256)}",
        "",
        "#define EDGERL_OK 0",
        "#define EDGERL_ERR_OBS_NONFINITE 1     /* the observation holds NaN or infinity */",
        "#define EDGERL_ERR_ACTION_NONFINITE 2  /* the network produced NaN or infinity */",
        "#define EDGERL_ERR_STATE_NONFINITE 3   /* a recurrent policy's next state holds NaN or infinity */",
        "",
        f"typedef {'int32_t' if p.discrete else 'float'} edgerl_action_t;",
        "",
        "/* Activations of one call (ping-pong buffers a/b; phi: OFENet's concatenated features;",
        " * st: a recurrent policy's next state; g, g2: its gate pre-activations). */",
        "typedef struct edgerl_scratch {",
        *scratch,
        "} edgerl_scratch;",
        "",
    ]
    if not p.discrete:
        header += ["extern const float edgerl_action_low[EDGERL_ACT_DIM];",
                   "extern const float edgerl_action_high[EDGERL_ACT_DIM];"]
    if meta.obs_names:
        header.append("extern const char *const edgerl_obs_names[EDGERL_OBS_DIM];")
    header += [
        "/* The sizes above as data, for foreign-function callers (Python ctypes). */",
        "extern const int32_t edgerl_obs_dim, edgerl_act_dim, edgerl_discrete, edgerl_state_size, edgerl_state_layers;",
        "extern const uint32_t edgerl_scratch_size;",
        "extern const char edgerl_source_sha256[65];",
        "extern const char edgerl_state_kind[8];  /* \"lstm\", \"gru\", or \"\" (feed-forward) */",
        "",
        f"{signature};",
    ]
    if p.state is None:
        header += [
            "/* n observations [n][EDGERL_OBS_DIM] -> n actions; stops at and returns the first error. */",
            "int edgerl_act_batch(const float *obs, edgerl_action_t *action, int32_t n, edgerl_scratch *s);"]
    header += [
        "",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
        "#endif /* EDGERL_POLICY_H */",
        "",
    ]
    source = [
        f"/* policy.c: generated by edgerl {meta.edgerl_version} from {_comment(meta.source)} "
        f"(sha256 {meta.source_sha256[:16]}...). C99 + libm; do not edit. */",
        '#include "policy.h"',
        "",
        "#include <math.h>",
        "",
        "const int32_t edgerl_obs_dim = EDGERL_OBS_DIM;",
        "const int32_t edgerl_act_dim = EDGERL_ACT_DIM;",
        "const int32_t edgerl_discrete = EDGERL_DISCRETE;",
        "const uint32_t edgerl_scratch_size = (uint32_t)sizeof(edgerl_scratch);",
        "const char edgerl_source_sha256[65] = EDGERL_SOURCE_SHA256;",
        "const int32_t edgerl_state_size = EDGERL_STATE_SIZE;",
        f"const int32_t edgerl_state_layers = {n_layers};",
        f"const char edgerl_state_kind[8] = {_c_string(kind)};",
    ]
    if not p.discrete:
        source += [f"const float edgerl_action_low[EDGERL_ACT_DIM] = {{{', '.join(map(_lit, meta.action_low or []))}}};",
                   f"const float edgerl_action_high[EDGERL_ACT_DIM] = {{{', '.join(map(_lit, meta.action_high or []))}}};"]
    if meta.obs_names:
        source.append("const char *const edgerl_obs_names[EDGERL_OBS_DIM] = {"
                      + ", ".join(_c_string(n) for n in meta.obs_names) + "};")
    if p.state is not None:
        source += ["", "static float edgerl_sigmoid(float v) { return 1.0f / (1.0f + expf(-v)); }"]
    keep_state = (["    for (o = 0; o < EDGERL_STATE_SIZE; ++o) state_out[o] = s->st[o];"]
                  if p.state is not None else [])
    source += ["", *em.consts, "",
               signature,
               "{",
               "    int i, o;",
               "    for (i = 0; i < EDGERL_OBS_DIM; ++i) {",
               "        if (!isfinite(obs[i])) return EDGERL_ERR_OBS_NONFINITE;",
               "    }",
               *em.body,
               *keep_state,
               "    (void)i;",
               "    return EDGERL_OK;",
               "}",
               ""]
    if p.state is not None:
        return "\n".join(header), "\n".join(source)
    source += ["int edgerl_act_batch(const float *obs, edgerl_action_t *action, int32_t n, edgerl_scratch *s)",
               "{",
               "    int32_t k;",
               "    for (k = 0; k < n; ++k) {",
               "        const int rc = edgerl_act(obs + (long)k * EDGERL_OBS_DIM, action + (long)k * EDGERL_ACT_DIM, s);",
               "        if (rc != EDGERL_OK) return rc;",
               "    }",
               "    return EDGERL_OK;",
               "}",
               ""]
    return "\n".join(header), "\n".join(source)

