"""Media I/O, interpolators and the frame pipeline."""
