"""The service's quantization in numpy and its fake-quantized twin in torch."""
