"""Launch geometry of the CUDA kernels: one value, :data:`TILE`.

* The GEMM kernel runs blocks of TILE x TILE threads; each thread computes
  ``gemm.REG x gemm.REG`` outputs, so a block computes a (REG*TILE) x (REG*TILE)
  tile of C, stepping through K in slices of TILE.
* The element-wise (per step) and reduction kernels run blocks of TILE*TILE threads.

16 suits current GPUs (256 threads, 64 x 64 output tiles). Tests set it small
(e.g. 2 or 4) so that several blocks and the partial-tile guards run on tiny shapes.
Read at launch time: change it between calls, not during one.
"""

TILE = 16
