"""Character language model on the text of CPython's bundled ``pydoc_data.topics``
(the help topics of the Python documentation, ~465k characters): a CharLM (LSTM)
trained with truncated BPTT over parallel text streams, scored in bits per character
on the held-out last 5% of the text, then sampled.

    python examples/char_lm.py [--quick] [--epochs N] [--temperature T]

Prints the held-out bits/char, a generated sample and the training wall time.
Standard library data only: no extra package needed.

On a busy shared machine, OPENBLAS_NUM_THREADS=1 can be many times faster (these
shapes are small; contended BLAS threads spin waiting for each other).
"""
import argparse
import time

import numpy as np

from fastrnn.losses import cross_entropy
from fastrnn.models import CharLM
from fastrnn.optim import Adam
from fastrnn.train import fit_tbptt


def load_text():
    from pydoc_data.topics import topics
    return "".join(topics[key] for key in sorted(topics))


def stream_batches(ids, batch_size, steps):
    """Split ids into ``batch_size`` parallel streams and cut them into consecutive
    (x, y) chunks of ``steps`` steps, batch-first (B, steps): y is x shifted by one."""
    per_stream = (len(ids) - 1) // batch_size
    x = ids[:per_stream * batch_size].reshape(batch_size, per_stream)
    y = ids[1:per_stream * batch_size + 1].reshape(batch_size, per_stream)
    usable = (per_stream // steps) * steps
    return [(x[:, t:t + steps], y[:, t:t + steps]) for t in range(0, usable, steps)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a slice of the text and a smaller model, 5 short epochs (for tests)")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "rnn"])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100, help="truncated-BPTT chunk length")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)
    epochs = args.epochs or (5 if args.quick else 4)

    text = load_text()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    ids = np.array([index[c] for c in text], np.int64)
    split = int(len(ids) * 0.95)
    train_ids, test_ids = ids[:split], ids[split:]
    if args.quick:
        train_ids, test_ids = train_ids[:40000], test_ids[:5000]
    hidden = 64 if args.quick else args.hidden

    model = CharLM(len(chars), embedding_dim=32, hidden_size=hidden, cell=args.cell, seed=args.seed)
    optimizer = Adam(model.parameters(), lr=args.lr)
    batches = stream_batches(train_ids, args.batch_size, args.steps)
    start = time.perf_counter()
    history = fit_tbptt(model, cross_entropy, optimizer, batches, k=args.steps, epochs=epochs, time_axis=1,
                        carry_state="epoch", clip_grad_norm=1.0, verbose=args.verbose)
    train_time = time.perf_counter() - start
    bpc = float(model.bits_per_token(test_ids))
    prompt = "The "
    sample = model.generate([index[c] for c in prompt], 300, temperature=args.temperature, seed=args.seed)
    print(f"char_lm: {args.cell} H={hidden}, vocabulary {len(chars)}, {len(train_ids):,} training characters, "
          f"{epochs} epoch(s): held-out bits/char {bpc:.3f} on the last {len(test_ids):,} characters, "
          f"training wall time {train_time:.1f} s")
    print(f"sample (temperature {args.temperature}):\n{prompt}" + "".join(chars[i] for i in sample))
    return {"bpc": bpc, "train_time": train_time, "history": history, "model": model}


if __name__ == "__main__":
    main()
