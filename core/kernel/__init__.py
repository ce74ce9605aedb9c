"""The native kernel (Cython and C) and its numpy reference."""
