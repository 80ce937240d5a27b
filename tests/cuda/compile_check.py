"""Compile every fastrnn CUDA kernel to PTX for float32 and float64, without a GPU.

The simulator runs kernels as Python and checks no types; this script puts them
through Numba's real CUDA compiler (typing, lowering, NVVM), so code a GPU would
reject fails here. Needs numba-cuda with NVVM (``pip install 'numba-cuda[cu13]'``)
and NUMBA_ENABLE_CUDASIM unset. Exit status: 0 compiled, 1 a kernel failed,
77 the toolchain is missing (nothing checked). Run by tests/cuda/test_compile.py.

Kernels that call overloaded/device functions ask the driver for the current
device's compute capability; with no driver we answer for it (sm_80).
"""
import sys

CC = (8, 0)


def main():
    try:
        from numba import cuda, types
        import numba.cuda.dispatcher as dispatcher

        class _Device:
            compute_capability = CC

        dispatcher.get_current_device = lambda: _Device()

        def probe(a):
            a[0] = 1.0
        cuda.compile_ptx(probe, (types.float32[::1],), cc=CC)
    except Exception as exc:  # no NVVM / NVRTC: nothing can be checked here
        print(f"SKIP: CUDA toolchain unavailable: {type(exc).__name__}: {exc}")
        return 77

    from fastrnn.cuda import common, gemm, gru, gru_variants, layer_norm, lstm, lstm_variants, rnn

    failures = 0
    for f in (types.float32, types.float64):
        A1, A2, A3 = (types.Array(f, n, "C") for n in (1, 2, 3))
        S2 = types.Array(f, 2, "A")  # a column slice: rows strided
        L = types.Array(types.int64, 1, "C")
        i64, boolean = types.int64, types.boolean
        kernels = {
            "lstm_sequence": (lstm.lstm_sequence_kernel(16, f.name), (A3, A1, A1, A2, A2, A2, L, A3, A3, boolean)),
            "lstm_backward_sequence": (lstm.lstm_backward_sequence_kernel(16, f.name),
                                       (A3, A3, A2, L, A3, A2, A2, A3, A2)),
            "lstm_step": (lstm.lstm_step_kernel, (i64, A3, A1, A1, A2, A2, L, A3, i64, A3, boolean)),
            "lstm_commit_projection": (lstm.lstm_commit_projection_kernel, (i64, A3, A2, L)),
            "lstm_backward_step": (lstm.lstm_backward_step_kernel, (i64, A3, A3, A2, L, A3, A2, A2, A2, A3)),
            "lstm_projection_grad": (lstm.lstm_projection_grad_kernel, (i64, L, A3, A2, A3)),
            "gru_sequence": (gru.gru_sequence_kernel(16, f.name), (A3, A1, A1, A2, A2, A2, L, A3, A3, boolean)),
            "gru_backward_sequence": (gru.gru_backward_sequence_kernel(16, f.name),
                                      (A3, A3, A2, A3, L, A3, A2, A3, A3, A2)),
            "gru_reset_before_gates": (gru.gru_reset_before_gates_kernel, (i64, A3, A1, A1, A2, A2)),
            "gru_reset_before_output": (gru.gru_reset_before_output_kernel, (i64, A3, A1, A1, A2, L, A3)),
            "gru_reset_before_backward_gates": (gru.gru_reset_before_backward_gates_kernel,
                                                (i64, A3, A2, A3, L, A3, A2, A3, A3)),
            "gru_reset_before_backward_reset": (gru.gru_reset_before_backward_reset_kernel,
                                                (i64, A3, A2, A3, L, A2, A2, A3)),
            "rnn_sequence": (rnn.rnn_sequence_kernel(16, f.name), (A3, A1, A1, A2, A2, L, A3, boolean)),
            "rnn_backward_sequence": (rnn.rnn_backward_sequence_kernel(16, f.name), (A3, L, A3, A2, A3, A2, boolean)),
            "sum_rows": (common._sum_rows_kernel, (A2, A1)),
            "sum_rows_strided": (common._sum_rows_kernel, (S2, A1)),
        }
        # The variant kernels (options that are off arrive as flags and stand-in arrays).
        flags5 = (boolean,) * 5
        kernels.update({
            "masked": (lstm_variants.masked_kernel, (A2, A2, A2)),
            "add": (lstm_variants.add_kernel, (A1, A1, A1)),
            "add_masked": (lstm_variants.add_masked_kernel, (i64, L, A2, A2, A2)),
            "layer_norm_rows": (layer_norm._forward_kernel(256, f.name),
                                (A2, A1, A2, A2, A1, L, i64, boolean, boolean)),
            "layer_norm_rows_backward": (layer_norm._backward_kernel(256, f.name), (A2, A1, A2, A1, L, i64, A2, A2)),
            "lstm_variants_step": (lstm_variants.lstm_variants_step_kernel,
                                   (i64, i64, A3, A1, A2, A2, A2, L, A3, A3, A3, A3, A3, f, boolean, *flags5)),
            "lstm_variants_norm_step": (lstm_variants._norm_step_kernel(256, f.name),
                                        (i64, i64, A3, A1, A2, A2, A2, L, A3, A3, A3, A3, A3, f, A2, A3, A2, A1, A1,
                                         boolean, *flags5)),
            "lstm_variants_backward_step": (lstm_variants.lstm_variants_backward_step_kernel,
                                            (i64, A3, A3, A3, A2, L, A3, A2, A2, A3, A3, A2, A3, A3, f, *flags5)),
            "lstm_variants_norm_backward_step": (lstm_variants._norm_backward_step_kernel(256, f.name),
                                                 (i64, A3, A3, A3, A2, L, A3, A2, A2, A3, A3, A2, A3, A3, f, A3, A2,
                                                  A1, A1, A2, A3, *flags5)),
            "gru_variants_step": (gru_variants.gru_variants_step_kernel,
                                  (i64, A3, A2, A1, A1, A2, L, A3, A3, A3, boolean, boolean)),
            "gru_variants_backward_step": (gru_variants.gru_variants_backward_step_kernel,
                                           (i64, A3, A3, A3, A1, A1, A2, A3, L, A3, A2, A3, A3, A3, boolean, boolean)),
        })
        for layouts in ((A2, A2, A2), (A2, A2, S2), (S2, A2, A2), (S2, A2, S2)):
            kernels[f"gemm_{''.join(t.layout for t in layouts)}"] = (
                gemm._gemm_kernel(16, f.name), (*layouts, boolean, boolean, boolean))
        for name, (kernel, signature) in kernels.items():
            fn = getattr(kernel, "py_func", kernel)
            try:
                ptx, _ = cuda.compile_ptx(fn, signature, cc=CC)
            except Exception as exc:
                failures += 1
                print(f"FAIL {name} {f}: {type(exc).__name__}: {str(exc)[:2000]}")
                continue
            if f == types.float32 and (".f64" in ptx):
                failures += 1
                print(f"FAIL {name} {f}: float32 kernel computes in float64 (f64 instructions in its PTX)")
            else:
                print(f"ok   {name} {f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
