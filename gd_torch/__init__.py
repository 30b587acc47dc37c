"""gd_torch: gradient descent, taught and run on PyTorch, Lightning and TensorBoard."""
