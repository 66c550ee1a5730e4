"""teaclave-infer's examples."""
