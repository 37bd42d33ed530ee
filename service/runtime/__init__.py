"""Running the model: the verified ONNX bundle and session, and the payload-agnostic
micro-batcher that feeds it."""
