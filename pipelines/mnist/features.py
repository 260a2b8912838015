"""Feature names and image-derived features for MNIST, shared by the data step, Transform,
Trainer and Evaluator."""

IMAGE_KEY = 'image_raw'  # 784 uint8 pixel values, row-major, as one bytes value
LABEL_KEY = 'label'  # class id (index into the chosen classes)
ID_KEY = 'example_id'  # stable id: 'mnist-<row in the source file>'
HEIGHT = WIDTH = 28
PIXELS_KEY = 'pixels_xf'  # 784 floats in 0..1

# Image-derived features, computed in Transform and kept for slicing.
SHAPE_FEATURES = ('ink', 'thickness', 'width', 'height', 'aspect')
NUM_BUCKETS = 4


def bucket_name(key: str) -> str:
    return key + '_bucket'
