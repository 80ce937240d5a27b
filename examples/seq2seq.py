"""Seq2seq on a generated task: reverse a string of digits (lengths 3 to 10) with an
encoder-decoder (GRU + Luong dot attention), then greedy-decode held-out strings.

    python examples/seq2seq.py [--quick] [--no-attention] [--epochs N]

Prints the held-out exact-match rate and the training wall time. NumPy only.

On a busy shared machine, OPENBLAS_NUM_THREADS=1 can be many times faster (these
shapes are small; contended BLAS threads spin waiting for each other).
"""
import argparse
import time

import numpy as np

from fastrnn.data import BatchIterator, pad_sequences
from fastrnn.losses import cross_entropy
from fastrnn.models import Seq2Seq
from fastrnn.optim import Adam, CosineWithWarmup
from fastrnn.train import fit

PAD, BOS, EOS = 10, 11, 12   # digits are 0..9
VOCAB = 13


def make_data(n, rng, min_len=3, max_len=10):
    """(src (n, max_len) padded with PAD, src_lengths, tgt_in, tgt_out (-100 padding), reversed strings)."""
    lengths = rng.integers(min_len, max_len + 1, n)
    seqs = [rng.integers(0, 10, k) for k in lengths]
    src, _ = pad_sequences(seqs, padding_value=PAD, batch_first=True)
    targets = [s[::-1] for s in seqs]
    tgt_in, _ = pad_sequences([np.r_[BOS, t] for t in targets], padding_value=PAD, batch_first=True)
    tgt_out, _ = pad_sequences([np.r_[t, EOS] for t in targets], padding_value=-100, batch_first=True)
    return src, lengths, tgt_in, tgt_out, targets


def exact_match(model, src, lengths, targets, max_len):
    pred = model.predict(src, max_len + 1, src_lengths=lengths)
    hits = 0
    for row, target in zip(pred, targets):
        hits += len(row) > len(target) and np.array_equal(row[:len(target)], target) and row[len(target)] == EOS
    return hits / len(targets)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small data, a few epochs (for tests)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--train-size", type=int, default=None)
    parser.add_argument("--no-attention", action="store_true")
    parser.add_argument("--cell", default="gru", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)
    epochs = args.epochs or (3 if args.quick else 15)
    n_train = args.train_size or (2000 if args.quick else 10000)
    max_len = 10

    rng = np.random.default_rng(args.seed)
    src, lengths, tgt_in, tgt_out, _ = make_data(n_train, rng, max_len=max_len)
    test_src, test_lengths, _, _, test_targets = make_data(500 if args.quick else 2000, rng, max_len=max_len)
    model = Seq2Seq(VOCAB, VOCAB, embedding_dim=16, hidden_size=args.hidden, cell=args.cell,
                    attention=not args.no_attention, bos_id=BOS, eos_id=EOS, seed=args.seed)
    optimizer = Adam(model.parameters(), lr=args.lr)
    # batches (src, tgt_out, tgt_in, lengths): fit calls model(src, tgt_in, lengths), loss vs tgt_out
    batches = BatchIterator(src, tgt_out, tgt_in, batch_size=args.batch_size, seed=args.seed, lengths=lengths,
                            sequence_arrays=[0])
    schedule = CosineWithWarmup(optimizer, warmup_steps=len(batches) // 2, total_steps=epochs * len(batches))
    start = time.perf_counter()
    history = fit(model, cross_entropy, optimizer, batches, epochs=epochs, scheduler=schedule,
                  scheduler_interval="step", clip_grad_norm=5.0, verbose=args.verbose)
    train_time = time.perf_counter() - start
    accuracy = exact_match(model, test_src, test_lengths, test_targets, max_len)
    kind = "no attention" if args.no_attention else "dot attention"
    print(f"seq2seq (reverse digit strings of length 3-{max_len}): {args.cell} H={args.hidden}, {kind}, "
          f"{n_train} pairs, {epochs} epochs: held-out exact match {accuracy:.4f} "
          f"({len(test_targets)} strings), training wall time {train_time:.1f} s")
    return {"accuracy": accuracy, "train_time": train_time, "history": history, "model": model}


if __name__ == "__main__":
    main()
