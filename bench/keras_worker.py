"""The DCEC nets in Keras 3 / TensorFlow, timed one round at a time for bench/keras_compare.py.

    .venv-keras/bin/python bench/keras_worker.py --net paper --workload pretrain --threads 2 [--precision bf16]

Runs in its own environment (`make bench-keras` makes `.venv-keras` with tensorflow-cpu): it imports nothing
of the project, so TensorFlow never becomes a dependency of the pipeline. The nets are model/nets.py's
layer for layer — three stride-2 convolutions ('same', the third 'valid' when the size is not a multiple of
8, as Guo's Keras code), a linear embedding, the mirrored transposed convolutions — so the parameter count
matches the PyTorch CAE exactly (checked by the orchestrator). The workloads match bench/_workloads.py:

* `pretrain`: `autoencoder.fit` on the round's images (MSE, Adam), batch 256 — Guo's pretraining call;
* `cluster`: `train_on_batch` of the joint model (KL(P‖Q) and MSE, weighted), one batch per call;
* `target`: `predict` of Q over the round's images (eval batch) and P from it — the target-distribution pass.

Protocol: after building and one untimed warm-up round, each line "round" on stdin runs one timed round
and prints {"images": n, "seconds": s, "steps": [s, ...]} on stdout; "quit" ends. A round is `--calls` batches;
a step is one batch (`fit`: from the previous batch's end to this one's, through a callback) or, for `target`,
the whole round.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

NETS = {  # size, channels, filters, kernels, embedding, activation, k, (kl, recon) weights
    "paper": (128, 3, (32, 64, 128), (5, 5, 3), 32, "elu", 50, (0.9, 0.1)),
    "guo": (28, 1, (32, 64, 128), (5, 5, 3), 10, "relu", 10, (0.1, 1.0)),
}


def build(net: str):
    """(autoencoder, encoder, q_model, joint model, size, channels, k) for one of NETS."""
    import keras
    from keras import layers, ops

    size, channels, filters, kernels, embedding, activation, k, (kl, recon) = NETS[net]
    same_last = size % 8 == 0
    inputs = keras.Input((size, size, channels))
    h = inputs
    for i, (f, kernel) in enumerate(zip(filters, kernels)):
        h = layers.Conv2D(f, kernel, strides=2, padding="same" if i < 2 or same_last else "valid",
                          activation=activation)(h)
    feature_shape = tuple(h.shape[1:])
    z = layers.Dense(embedding)(layers.Flatten()(h))
    h = layers.Dense(feature_shape[0] * feature_shape[1] * feature_shape[2], activation=activation)(z)
    h = layers.Reshape(feature_shape)(h)
    h = layers.Conv2DTranspose(filters[1], kernels[2], strides=2, padding="same" if same_last else "valid",
                               activation=activation)(h)
    h = layers.Conv2DTranspose(filters[0], kernels[1], strides=2, padding="same", activation=activation)(h)
    x_hat = layers.Conv2DTranspose(channels, kernels[0], strides=2, padding="same")(h)

    class Clustering(layers.Layer):
        """Student-t soft assignment to k learnable centres (DEC eq. 1, alpha 1)."""

        def build(self, input_shape):
            self.centres = self.add_weight(shape=(k, input_shape[-1]), initializer="glorot_uniform")

        def call(self, x):
            squared = ops.sum(ops.square(ops.expand_dims(x, 1) - self.centres), axis=2)   # (B, k)
            kernel = 1.0 / (1.0 + squared)
            return kernel / ops.sum(kernel, axis=1, keepdims=True)

    q = Clustering()(z)
    autoencoder = keras.Model(inputs, x_hat)
    autoencoder.compile(optimizer="adam", loss="mse")
    q_model = keras.Model(inputs, q)
    joint = keras.Model(inputs, [q, x_hat])
    joint.compile(optimizer="adam", loss=["kld", "mse"], loss_weights=[kl, recon])
    return autoencoder, q_model, joint, size, channels, k


def target_distribution(q):
    weight = q ** 2 / q.sum(axis=0)
    return (weight.T / weight.sum(axis=1)).T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--net", choices=sorted(NETS), required=True)
    parser.add_argument("--workload", choices=("pretrain", "cluster", "target", "params"), required=True)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--eval-batch-size", type=int, default=1024)
    parser.add_argument("--calls", type=int, default=4, help="batches per round")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    args = parser.parse_args()
    import keras
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)  # before anything starts TensorFlow
    tf.config.threading.set_inter_op_parallelism_threads(1)
    if args.precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")  # bf16 compute, fp32 weights
    autoencoder, q_model, joint, size, channels, k = build(args.net)
    if args.workload == "params":
        print(json.dumps({"params": int(joint.count_params()), "tensorflow": tf.__version__}), flush=True)
        return
    rng = np.random.default_rng(0)
    batch = args.eval_batch_size if args.workload == "target" else args.batch_size
    images = rng.random((batch * args.calls, size, size, channels), dtype=np.float32)
    p = target_distribution(rng.random((batch, k), dtype=np.float32))

    class BatchEnds(keras.callbacks.Callback):
        """perf_counter at the end of each training batch of `fit`."""

        def __init__(self):
            super().__init__()
            self.ends: list[float] = []

        def on_train_batch_end(self, batch, logs=None):
            self.ends.append(time.perf_counter())

    def one_round() -> list[float]:
        """Seconds of each step of the round."""
        started = time.perf_counter()
        if args.workload == "pretrain":
            batch_ends = BatchEnds()
            autoencoder.fit(images, images, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0,
                            callbacks=[batch_ends])
            return list(np.diff([started, *batch_ends.ends]))
        if args.workload == "cluster":
            steps = []
            for start in range(0, len(images), batch):
                x = images[start:start + batch]
                step_started = time.perf_counter()
                joint.train_on_batch(x, [p, x])
                steps.append(time.perf_counter() - step_started)
            return steps
        target_distribution(q_model.predict(images, batch_size=args.eval_batch_size, verbose=0))
        return [time.perf_counter() - started]

    one_round()                                               # warm-up: graph tracing, oneDNN primitives
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip() == "quit":
            break
        started = time.perf_counter()
        steps = one_round()
        print(json.dumps({"images": len(images), "seconds": time.perf_counter() - started,
                          "steps": [float(step) for step in steps]}), flush=True)


if __name__ == "__main__":
    main()
