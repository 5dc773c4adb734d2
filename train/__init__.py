"""melstream train package: wires pipeline + models with Accelerate."""
