// Placeholder for the non-GEMM op benchmarks (filled in with the backend ops).
