"""tf.Transform for MNIST: pixels to 0..1, plus shape features of each digit for slicing."""

from typing import Dict

import tensorflow as tf
import tensorflow_transform as tft

from blindspot.pipelines.mnist import features as F

_ON = 0.5  # a pixel is part of the stroke above half intensity


def image_features(pixels: tf.Tensor) -> Dict[str, tf.Tensor]:
    """Shape features of (n, 28, 28) images in 0..1: ink (mean intensity), thickness (stroke
    area / outline length, grows with stroke width), bounding-box width, height and aspect."""
    on = pixels > _ON
    on_f = tf.cast(on, tf.float32)
    area = tf.reduce_sum(on_f, axis=[1, 2])
    padded = tf.pad(on, [[0, 0], [1, 1], [1, 1]])
    interior = (
        padded[:, :-2, 1:-1] & padded[:, 2:, 1:-1] & padded[:, 1:-1, :-2] & padded[:, 1:-1, 2:]
    )
    outline = tf.reduce_sum(tf.cast(on & ~interior, tf.float32), axis=[1, 2])

    def extent(any_on: tf.Tensor) -> tf.Tensor:
        """Span from the first to the last True along axis 1 (0 for an empty image)."""
        size = tf.shape(any_on)[1]
        idx = tf.cast(tf.range(size), tf.float32)[None, :] + tf.zeros_like(
            tf.cast(any_on, tf.float32)
        )
        first = tf.reduce_min(tf.where(any_on, idx, tf.cast(size, tf.float32)), axis=1)
        last = tf.reduce_max(tf.where(any_on, idx, -1.0), axis=1)
        return tf.maximum(last - first + 1.0, 0.0)

    width = extent(tf.reduce_any(on, axis=1))
    height = extent(tf.reduce_any(on, axis=2))
    return {
        'ink': tf.reduce_mean(pixels, axis=[1, 2]),
        'thickness': area / tf.maximum(outline, 1.0),
        'width': width,
        'height': height,
        'aspect': width / tf.maximum(height, 1.0),
    }


def preprocessing_fn(inputs: Dict[str, tf.Tensor]) -> Dict[str, tf.Tensor]:
    raw = tf.reshape(inputs[F.IMAGE_KEY], [-1])
    pixels = tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.float32) / 255.0
    pixels = tf.reshape(pixels, [-1, F.HEIGHT, F.WIDTH])
    outputs = {F.PIXELS_KEY: tf.reshape(pixels, [-1, F.HEIGHT * F.WIDTH])}
    for name, value in image_features(pixels).items():
        outputs[name] = value
        outputs[F.bucket_name(name)] = tft.bucketize(value, F.NUM_BUCKETS, epsilon=0.01)
    if F.LABEL_KEY in inputs:
        outputs[F.LABEL_KEY] = tf.reshape(inputs[F.LABEL_KEY], [-1])
    return outputs
